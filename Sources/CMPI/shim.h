// MPI for SwiftCLIP's data-parallel training: Open MPI's C API (Debian: libopenmpi-dev, pkg-config
// `ompi-c`, which also supplies -lmpi) behind `static inline` functions with plain C types.
//
// Swift cannot use MPI's handle macros (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ... are
// casts of addresses of library globals in Open MPI), so each use sits in one accessor here. When
// mpi.h is not on the include path (libopenmpi-dev not installed: pkg-config adds no -I), the same
// functions exist and return SCMPI_UNAVAILABLE, so the package builds and runs everything except
// multi-rank training; `scmpi_available()` tells which build this is.
#ifndef SWIFTCLIP_CMPI_SHIM_H
#define SWIFTCLIP_CMPI_SHIM_H

#include <stdint.h>
#include <string.h>

#define SCMPI_UNAVAILABLE (-1)

// An MPI_Request of either kind of implementation (a pointer in Open MPI, an int in MPICH).
typedef struct { unsigned char storage[16]; } scmpi_request;

#if __has_include(<mpi.h>)
#include <mpi.h>

_Static_assert(sizeof(MPI_Request) <= sizeof(scmpi_request), "MPI_Request does not fit scmpi_request");

static inline int scmpi_available(void) { return 1; }
static inline int scmpi_success(void) { return MPI_SUCCESS; }

static inline int scmpi_init(int *provided) {
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
    if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return rc;
}
static inline int scmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int scmpi_initialized(void) { int f = 0; MPI_Initialized(&f); return f; }
static inline int scmpi_finalized(void) { int f = 0; MPI_Finalized(&f); return f; }
static inline int scmpi_finalize(void) { return MPI_Finalize(); }
static inline int scmpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static inline int scmpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }
static inline int scmpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static inline int scmpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline void scmpi_error_string(int code, char *buffer, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (capacity <= 0) return;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    memcpy(buffer, text, (size_t)length);
    buffer[length] = 0;
}
static inline const char *scmpi_library_version(char *buffer) {
    int length = 0;
    MPI_Get_library_version(buffer, &length);
    return buffer;
}
static inline int scmpi_library_version_capacity(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }

static inline int scmpi_bcast_bytes(void *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int scmpi_allgather_bytes(const void *send, int count, void *receive) {
    return MPI_Allgather(send, count, MPI_BYTE, receive, count, MPI_BYTE, MPI_COMM_WORLD);
}
static inline int scmpi_allgatherv_floats(const float *send, int count, float *receive, const int *counts, const int *displacements) {
    return MPI_Allgatherv(send, count, MPI_FLOAT, receive, counts, displacements, MPI_FLOAT, MPI_COMM_WORLD);
}
// Element-wise sum over ranks, in place.
static inline int scmpi_allreduce_sum_floats(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int scmpi_allreduce_sum_doubles(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int scmpi_allreduce_max_int64(int64_t *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
}
// Sum over ranks of `send` (counts[0] + counts[1] + … floats); rank r receives the counts[r] floats of block r.
static inline int scmpi_reduce_scatter_sum_floats(const float *send, float *receive, const int *counts) {
    return MPI_Reduce_scatter(send, receive, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
// Non-blocking in-place sum (gradient buckets); progressed by scmpi_test / completed by scmpi_wait.
static inline int scmpi_iallreduce_sum_floats(float *buffer, int count, scmpi_request *request) {
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
    memcpy(request->storage, &r, sizeof r);
    return rc;
}
static inline int scmpi_test(scmpi_request *request, int *done) {
    MPI_Request r;
    memcpy(&r, request->storage, sizeof r);
    int rc = MPI_Test(&r, done, MPI_STATUS_IGNORE);
    memcpy(request->storage, &r, sizeof r);
    return rc;
}
static inline int scmpi_wait(scmpi_request *request) {
    MPI_Request r;
    memcpy(&r, request->storage, sizeof r);
    int rc = MPI_Wait(&r, MPI_STATUS_IGNORE);
    memcpy(request->storage, &r, sizeof r);
    return rc;
}

#else  // built without MPI

static inline int scmpi_available(void) { return 0; }
static inline int scmpi_success(void) { return 0; }
static inline int scmpi_init(int *provided) { (void)provided; return SCMPI_UNAVAILABLE; }
static inline int scmpi_thread_funneled(void) { return 1; }
static inline int scmpi_initialized(void) { return 0; }
static inline int scmpi_finalized(void) { return 0; }
static inline int scmpi_finalize(void) { return SCMPI_UNAVAILABLE; }
static inline int scmpi_rank(int *rank) { *rank = 0; return SCMPI_UNAVAILABLE; }
static inline int scmpi_size(int *size) { *size = 1; return SCMPI_UNAVAILABLE; }
static inline int scmpi_abort(int code) { (void)code; return SCMPI_UNAVAILABLE; }
static inline int scmpi_barrier(void) { return SCMPI_UNAVAILABLE; }
static inline void scmpi_error_string(int code, char *buffer, int capacity) {
    (void)code;
    const char *text = "swiftclip was built without MPI (install libopenmpi-dev and rebuild)";
    size_t n = strlen(text);
    if (capacity <= 0) return;
    if (n >= (size_t)capacity) n = (size_t)capacity - 1;
    memcpy(buffer, text, n);
    buffer[n] = 0;
}
static inline const char *scmpi_library_version(char *buffer) { buffer[0] = 0; return buffer; }
static inline int scmpi_library_version_capacity(void) { return 1; }
static inline int scmpi_bcast_bytes(void *b, int c, int r) { (void)b; (void)c; (void)r; return SCMPI_UNAVAILABLE; }
static inline int scmpi_allgather_bytes(const void *s, int c, void *r) { (void)s; (void)c; (void)r; return SCMPI_UNAVAILABLE; }
static inline int scmpi_allgatherv_floats(const float *s, int c, float *r, const int *n, const int *d) {
    (void)s; (void)c; (void)r; (void)n; (void)d; return SCMPI_UNAVAILABLE;
}
static inline int scmpi_allreduce_sum_floats(float *b, int c) { (void)b; (void)c; return SCMPI_UNAVAILABLE; }
static inline int scmpi_allreduce_sum_doubles(double *b, int c) { (void)b; (void)c; return SCMPI_UNAVAILABLE; }
static inline int scmpi_allreduce_max_int64(int64_t *b, int c) { (void)b; (void)c; return SCMPI_UNAVAILABLE; }
static inline int scmpi_reduce_scatter_sum_floats(const float *s, float *r, const int *c) { (void)s; (void)r; (void)c; return SCMPI_UNAVAILABLE; }
static inline int scmpi_iallreduce_sum_floats(float *b, int c, scmpi_request *q) { (void)b; (void)c; (void)q; return SCMPI_UNAVAILABLE; }
static inline int scmpi_test(scmpi_request *q, int *d) { (void)q; *d = 1; return SCMPI_UNAVAILABLE; }
static inline int scmpi_wait(scmpi_request *q) { (void)q; return SCMPI_UNAVAILABLE; }

#endif
#endif
