// rsem from Java through JNA (Debian: apt-get install libjna-java):
//   javac -cp /usr/share/java/jna.jar RsemDemo.java
//   java -cp /usr/share/java/jna.jar:. -Djna.library.path=target/release RsemDemo
// int64_t is Java's long, int is int, double is double; the handle is an
// opaque Pointer. The status codes are macros in rsem.h: copied here.
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

public class RsemDemo {
    public interface Rsem extends Library {
        Rsem LIB = Native.load("rsem", Rsem.class);

        Pointer sem_new(long value);
        Pointer sem_new_ex(long value, long max, int flags);
        void sem_free(Pointer sem);
        int sem_acquire(Pointer sem);
        int sem_try_acquire(Pointer sem);
        int sem_acquire_timed(Pointer sem, double timeoutSeconds);
        int sem_release(Pointer sem);
        int sem_release_n(Pointer sem, long n);
        long sem_value(Pointer sem);
        long sem_max(Pointer sem);
        long sem_waiters(Pointer sem);
        int sem_shutdown(Pointer sem);
    }

    static final int SEM_OK = 0, SEM_TIMEDOUT = 1, SEM_EINVAL = -1, SEM_EOVERFLOW = -2,
            SEM_ECLOSED = -3, SEM_FIFO = 1;
    static final long SEM_COUNT_MAX = (1L << 60) - 1;

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        Rsem r = Rsem.LIB;
        Pointer s = r.sem_new_ex(0, 10, SEM_FIFO);
        check(s != null, "sem_new_ex");
        check(r.sem_max(s) == 10, "max");
        check(r.sem_new(-1) == null, "a negative value is refused");
        check(r.sem_try_acquire(s) == SEM_TIMEDOUT, "empty");
        // Java threads blocked in the C library, served in arrival order.
        StringBuffer order = new StringBuffer();
        Thread[] ts = new Thread[3];
        for (int i = 0; i < 3; i++) {
            final int id = i;
            ts[i] = new Thread(() -> {
                check(r.sem_acquire(s) == SEM_OK, "acquire");
                order.append(id);
            });
            ts[i].start();
            while (r.sem_waiters(s) != i + 1) Thread.sleep(1);
        }
        for (int i = 0; i < 3; i++) {
            check(r.sem_release(s) == SEM_OK, "release");
            ts[i].join();
        }
        check(order.toString().equals("012"), "FIFO order: " + order);
        check(r.sem_release_n(s, 11) == SEM_EOVERFLOW, "past the maximum");
        check(r.sem_release_n(s, 0) == SEM_EINVAL, "n = 0");
        r.sem_shutdown(s);
        check(r.sem_acquire(s) == SEM_ECLOSED, "shut down");
        r.sem_free(s);
        System.out.println("java_jna_example: ok");
    }
}
