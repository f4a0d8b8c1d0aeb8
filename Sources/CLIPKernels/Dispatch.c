// Chooses the kernel table once: the best level the CPU (and its operating system, which must
// save the wide registers) supports, capped by SWIFTCLIP_ISA.
#include "CLIPKernels.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern const clip_kernel_table clip_baseline_table;
#if defined(__x86_64__)
extern const clip_kernel_table clip_avx2_table;
extern const clip_kernel_table clip_avx512_table;
extern const clip_kernel_table clip_avx512bf16_table;
#endif

int clip_kernels_cpu_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks (XGETBV) that the OS enabled the AVX/AVX-512 state.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni") ? CLIP_ISA_AVX512_BF16
                                                                                             : CLIP_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CLIP_ISA_AVX2;
#endif
    return CLIP_ISA_BASELINE;
}

const clip_kernel_table *clip_kernels_for_level(int level) {
    if (level < CLIP_ISA_BASELINE || level > clip_kernels_cpu_level()) return NULL;
#if defined(__x86_64__)
    if (level == CLIP_ISA_AVX512_BF16) return &clip_avx512bf16_table;
    if (level == CLIP_ISA_AVX512) return &clip_avx512_table;
    if (level == CLIP_ISA_AVX2) return &clip_avx2_table;
#endif
    return level == CLIP_ISA_BASELINE ? &clip_baseline_table : NULL;
}

int clip_kernels_bf16_dot_preferred(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") && clip_kernels_cpu_level() >= CLIP_ISA_AVX512_BF16;
#else
    return 0;
#endif
}

static const clip_kernel_table *chosen;
static int request_invalid;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    int level = clip_kernels_cpu_level();
    const char *cap = getenv("SWIFTCLIP_ISA");
    if (cap && *cap) {
        int wanted = -1;
        if (strcmp(cap, "avx512bf16") == 0) wanted = CLIP_ISA_AVX512_BF16;
        else if (strcmp(cap, "avx512") == 0) wanted = CLIP_ISA_AVX512;
        else if (strcmp(cap, "avx2") == 0) wanted = CLIP_ISA_AVX2;
        else if (strcmp(cap, "baseline") == 0) wanted = CLIP_ISA_BASELINE;
        if (wanted < 0) request_invalid = 1;
        else if (wanted < level) level = wanted;
    }
    const clip_kernel_table *table = NULL;
    while (!table) table = clip_kernels_for_level(level--);
    chosen = table;
}

const clip_kernel_table *clip_kernels(void) {
    pthread_once(&choose_once, choose);
    return chosen;
}

int clip_kernels_isa_request_invalid(void) {
    pthread_once(&choose_once, choose);
    return request_invalid;
}
