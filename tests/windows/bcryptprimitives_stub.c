/* TEST-ONLY stand-in for bcryptprimitives.dll, which Debian's Wine 8 lacks.
 * Rust's std imports ProcessPrng from it; this forwards to RtlGenRandom
 * (advapi32's SystemFunction036). It is built next to the Windows test
 * programs by scripts/test-windows and never shipped or installed. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
