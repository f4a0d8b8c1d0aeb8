// The fp32 weight-gradient GEMM (`gemm_at`, C[p, q] += Σ_r a[r, p]·b[r, q]) on the shapes of a
// convnext_v2_tiny training step at batch 8, on two threads as the engine runs it: C's rows (p)
// split in two, or its columns (q, whole 32-wide panels) split in two; caches flushed (16 M floats
// touched) before each of 15 runs, best run reported, as % of the 258 GFLOP/s two-core fp32 FMA peak
// measured on AMD EPYC Zen 4 (docs/training.md, "GEMMs in the step against the kernel"):
//   clang -O2 -std=gnu11 -I Sources/CLIPKernels/include -c Sources/CLIPKernels/KernelsAVX512.c -o k.o
//   clang -O2 -I Sources/CLIPKernels/include benchmarks/weight_gradient_split.c k.o -lm -lpthread -o wgs
// AVX-512 CPUs only.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
#include "CLIPKernels.h"
extern const clip_kernel_table clip_avx512_table;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float *buf(size_t n){float*p=aligned_alloc(64,((n*4+63)/64)*64);for(size_t i=0;i<n;i++)p[i]=(float)((rand()%2001)-1000)/1000.f;return p;}
typedef struct {const float *a, *b; float *c; long p, q, r, row_lo, row_hi, col_lo, col_hi;} job;
static void *run(void *x) {
    job *j = x;
    clip_avx512_table.gemm_at(j->a, j->p, j->b, j->q, j->r, j->c, j->q, 1, j->row_lo, j->row_hi, j->col_lo, j->col_hi);
    return 0;
}
int main(void) {
    // p × q over r rows: dW = dYᵀ·X of fc1 ([4C, C]) and fc2 ([C, 4C]) per stage, and the text tower's.
    long shapes[][3] = {{384,1536,1568},{1536,384,1568},{192,768,6272},{768,192,6272},{96,384,25088},{384,96,25088},
                        {768,3072,392},{3072,768,392},{512,2048,112},{2048,512,112},{1536,512,112}};
    size_t flush_count = 16 << 20;
    float *flush = buf(flush_count);
    for (unsigned s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        long p = shapes[s][0], q = shapes[s][1], r = shapes[s][2];
        float *a = buf(r * p), *b = buf(r * q), *c = buf(p * q);
        double best[2] = {1e9, 1e9};
        for (int it = 0; it < 15; it++) {
            for (int split = 0; split < 2; split++) {
                for (size_t i = 0; i < flush_count; i += 16) flush[i] += 1;
                long rows_half = (p + 7) / 8 / 2 * 8, cols_half = (q + 31) / 32 / 2 * 32;
                job j0 = {a, b, c, p, q, r, 0, p, 0, q}, j1 = j0;
                if (split == 0) { j0.row_hi = rows_half; j1.row_lo = rows_half; }
                else { j0.col_hi = cols_half; j1.col_lo = cols_half; }
                pthread_t t;
                double t0 = now();
                pthread_create(&t, 0, run, &j1);
                run(&j0);
                pthread_join(t, 0);
                double dt = now() - t0;
                if (dt < best[split]) best[split] = dt;
            }
        }
        double f = 2.0 * p * q * r / 1e9;
        printf("p=%5ld q=%5ld rows=%6ld  split p: %6.1f GFLOP/s (%3.0f%%)  split q: %6.1f GFLOP/s (%3.0f%%)\n", p, q, r,
               f / best[0], f / best[0] / 257.8 * 100, f / best[1], f / best[1] / 257.8 * 100);
        free(a); free(b); free(c);
    }
    return 0;
}
