// Moving resident pages from one mapping to another, for the engine's large-buffer cache
// (CLIPEngine/Tensor.swift). Here because mremap is variadic in C, which Swift cannot call.
#define _GNU_SOURCE
#include "CLIPKernels.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif

int clip_move_pages(void *src, size_t bytes, void *dst) {
#if defined(__linux__)
    return mremap(src, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst ? 0 : -1;
#else
    (void)src; (void)bytes; (void)dst;
    return -1;
#endif
}
