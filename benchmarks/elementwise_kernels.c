// The element-wise kernels of a ConvNeXt-V2 training step, one thread, one image's maps (stage 1:
// 56×56×96, its 4C map 3,136 × 384; stage 3 for the depthwise gradient), best of 15 runs each. Built
// twice — against an older checkout's kernels and against this one's — to compare kernel objects
// in one session (docs/training.md, "Element-wise passes cut"):
//   clang -O2 -std=gnu11 -I OLD/Sources/CLIPKernels/include -c OLD/Sources/CLIPKernels/KernelsAVX512.c -o old.o
//   clang -O2 -I OLD/Sources/CLIPKernels/include benchmarks/elementwise_kernels.c old.o -lm -o kernels_old
//   clang -O2 -std=gnu11 -I Sources/CLIPKernels/include -c Sources/CLIPKernels/KernelsAVX512.c -o new.o
//   clang -O2 -DNEW -I Sources/CLIPKernels/include benchmarks/elementwise_kernels.c new.o -lm -o kernels_new
// (-DNEW adds the kernels the older checkout lacks; -DROWS=N changes the 4C map's rows.) AVX-512 CPUs only.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include "CLIPKernels.h"
extern const clip_kernel_table clip_avx512_table;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float *buf(size_t n){float*p=aligned_alloc(64,((n*4+63)/64)*64);for(size_t i=0;i<n;i++)p[i]=(float)((rand()%2001)-1000)/1000.f;return p;}
#define BEST(expr) ({double b=1e9;for(int it=0;it<REPS;it++){double t0=now();expr;double t=now()-t0;if(t<b)b=t;}b;})
#ifndef ROWS
#define ROWS 3136
#endif
int main(void){
  const clip_kernel_table *K=&clip_avx512_table;
  int REPS=15;
  // stage 1 image: 56x56x96 (one image), k=7
  long h=56,w=56,c=96;
  float *x=buf(h*w*c),*dy=buf(h*w*c),*dw=buf(49*c+c);
  double t=BEST(K->depthwise_weight_grad_rows(x,dy,dw,dw+49*c,h,w,c,7,7,3,h,w,0,h));
  printf("dwgrad stage1 image: %.3f ms\n",t*1e3);
  long h3=14,c3=384; float *x3=buf(h3*h3*c3),*dy3=buf(h3*h3*c3),*dw3=buf(50*c3);
  t=BEST(K->depthwise_weight_grad_rows(x3,dy3,dw3,dw3+49*c3,h3,h3,c3,7,7,3,h3,h3,0,h3));
  printf("dwgrad stage3 image: %.3f ms\n",t*1e3);
  // dx path (forward conv) for comparison
  float *o=buf(h*w*c);
  t=BEST(K->depthwise_conv_rows(dy,dw,0,o,h,w,c,7,7,3,h,w,0,h));
  printf("dw conv (dx) stage1 image: %.3f ms\n",t*1e3);
  // 4C map, stage 1 one image: 3136 rows x 384
  long rows=ROWS,wd=384; float *z=buf(rows*wd),*hh=buf(rows*wd),*y=buf(rows*wd),*g=buf(rows*wd),*sums=buf(wd),*sc=buf(wd),*sh=buf(wd),*co=buf(wd),*d=buf(rows*wd);
  t=BEST((K->gelu(z,0,hh,rows*wd)));
  printf("gelu: %.3f ms (%.3f ns per element)\n",t*1e3,t*1e9/(rows*wd));
  t=BEST((K->gelu_backward(z,hh,y,rows*wd)));
  printf("gelu_backward: %.3f ms (%.3f ns per element)\n",t*1e3,t*1e9/(rows*wd));
  t=BEST((K->gelu_rows_square_sums(z,hh,sums,wd,rows)));
  printf("gelu+sq: %.3f ms\n",t*1e3);
  t=BEST((K->channel_affine_rows(hh,y,sc,sh,wd,rows,0,rows)));
  printf("affine: %.3f ms\n",t*1e3);
#ifdef NEW
  t=BEST((K->gelu_affine_rows(z,hh,y,sc,sh,wd,rows,0,rows)));
  printf("gelu_affine (new): %.3f ms\n",t*1e3);
#endif
  t=BEST((K->accumulate_rows_dot(g,hh,sums,co,wd,rows)));
  printf("sums dot: %.3f ms\n",t*1e3);
  t=BEST((K->grn_backward_rows(g,hh,z,sc,co,d,wd,rows,0,rows)));
  printf("grn_backward_rows z: %.3f ms\n",t*1e3);
  // fc1 stage1 with its GELU epilogue, and without: m=3136 k=96 n=384, packed
  { long m1=ROWS,k1=96,n1=384; float *W1=buf(k1*n1),*P1=buf(k1*n1),*bias1=buf(n1);
    K->pack_panels(W1,n1,0,k1,n1,P1,0,n1/32);
    double tg=BEST((K->gemm_packed(z,k1,P1,k1,n1,y,n1,bias1,CLIP_ACTIVATION_GELU,0,0,m1,0,n1/32)));
    double tn=BEST((K->gemm_packed(z,k1,P1,k1,n1,y,n1,bias1,CLIP_ACTIVATION_NONE,0,0,m1,0,n1/32)));
    printf("fc1 gemm + GELU: %.3f ms, without GELU: %.3f ms\n",tg*1e3,tn*1e3); }
  // fc2 stage1: m=3136 k=384 n=96, packed
  long m=ROWS,k=384,n=96; float *W=buf(k*n),*P=buf(k*n+64*k),*C=buf(m*n);
  K->pack_panels(W,n,0,k,n,P,0,(n+31)/32);
  t=BEST((K->channel_affine_rows(hh,y,sc,sh,wd,rows,0,rows),K->gemm_packed(y,k,P,k,n,C,n,0,0,1,0,m,0,(n+31)/32)));
  printf("affine + fc2 gemm: %.3f ms\n",t*1e3);
#ifdef NEW
  float *scr=buf(128*k);
  t=BEST((K->gemm_packed_normalized(hh,P,k,n,C,n,0,0,1,0,m,0,(n+31)/32,sc,sh,rows,0,0,scr)));
  printf("fc2 gemm normalized (new): %.3f ms\n",t*1e3);
#endif
  return 0;
}
