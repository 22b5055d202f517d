/*
 * checkpoint-faiss shim: a narrow C ABI over faiss's C++ API (Debian libfaiss-dev 1.7.3 ships only
 * the static C++ library, no C API).
 *
 * Rules of this ABI:
 *  - Every function that can fail returns an int status (CKF_OK or a CKF_ERR_* code). No C++
 *    exception ever crosses it: each entry point catches everything (std::exception and `...`).
 *  - On failure the message is stored in a thread-local string readable with ckf_last_error()
 *    on the same thread, until the next shim call on that thread.
 *  - Ids are caller-chosen int64 values (>= 0; -1 means "no result" in search output).
 *  - Metric is always inner product; vectors are expected L2-normalised by the caller, so the
 *    returned "distances" are cosine similarities (higher is closer).
 *  - A ckf_index is not internally synchronised: concurrent const calls (search, info, write)
 *    are safe; mutating calls need exclusive access (the Rust wrapper enforces it with &mut).
 *
 * Removal: Flat (IndexIDMap2 over IndexFlatIP) and IVF (IndexIVFFlat with native ids and a
 * hashtable direct map) remove for real. HNSW cannot remove in faiss, so removed ids are
 * tombstoned: the slot is marked deleted, excluded from every search through faiss's
 * SearchParameters::sel (supported by IndexHNSW in 1.7.3; the graph still routes through the
 * deleted node), and ckf_compact() rebuilds the graph from the kept vectors.
 */
#ifndef CHECKPOINT_FAISS_SHIM_H
#define CHECKPOINT_FAISS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckf_index ckf_index;

enum {
    CKF_OK = 0,
    CKF_ERR_FAISS = 1,     /* faiss threw (message in ckf_last_error) */
    CKF_ERR_INVALID = 2,   /* invalid argument detected by the shim */
    CKF_ERR_DUPLICATE = 3, /* add: id already present or repeated in the batch (*dup_id) */
    CKF_ERR_IO = 4,        /* open/write/close of a file failed */
    CKF_ERR_FORMAT = 5,    /* file is not a checkpoint-faiss index or is damaged */
    CKF_ERR_NOMEM = 6,     /* std::bad_alloc */
    CKF_ERR_UNKNOWN = 7,   /* non-std exception */
    CKF_ERR_NOT_TRAINED = 8
};

enum { CKF_KIND_FLAT = 0, CKF_KIND_HNSW = 1, CKF_KIND_IVF = 2 };

typedef struct ckf_info {
    int32_t kind;
    int32_t dim;
    int32_t is_trained;
    int32_t hnsw_m;               /* HNSW only */
    int32_t hnsw_ef_construction; /* HNSW only */
    int32_t hnsw_ef_search;       /* HNSW only */
    int64_t ivf_nlist;            /* IVF only */
    int64_t ivf_nprobe;           /* IVF only */
    int64_t live;                 /* searchable vectors */
    int64_t tombstones;           /* HNSW slots removed but not yet compacted */
} ckf_info;

/* Message of the last failed call on this thread ("" if none). Never NULL. */
const char* ckf_last_error(void);

int ckf_new_flat(int32_t dim, ckf_index** out);
int ckf_new_hnsw(int32_t dim, int32_t m, int32_t ef_construction, int32_t ef_search,
                 ckf_index** out);
int ckf_new_ivf(int32_t dim, int64_t nlist, int64_t nprobe, ckf_index** out);
void ckf_free(ckf_index* index);

int ckf_info_get(const ckf_index* index, ckf_info* out);

/* IVF: k-means on n vectors (n >= nlist). No-op for Flat and HNSW. */
int ckf_train(ckf_index* index, int64_t n, const float* x);

/* Adds n vectors (n * dim floats) with their ids. All-or-nothing for duplicate ids: on
 * CKF_ERR_DUPLICATE nothing was added and *dup_id holds the offending id. */
int ckf_add_with_ids(ckf_index* index, int64_t n, const float* x, const int64_t* ids,
                     int64_t* dup_id);

/* n queries, k results each: distances and labels are n * k; missing results are label -1. */
int ckf_search(const ckf_index* index, int64_t n, const float* x, int64_t k, float* distances,
               int64_t* labels);

/* Removes the given ids (unknown ids are ignored); *removed = how many were present. */
int ckf_remove_ids(ckf_index* index, int64_t n, const int64_t* ids, int64_t* removed);

/* HNSW: rebuild the graph from the live vectors, dropping tombstones. No-op otherwise. */
int ckf_compact(ckf_index* index);

int ckf_set_ef_search(ckf_index* index, int32_t ef_search);
int ckf_set_nprobe(ckf_index* index, int64_t nprobe);

/* Writes header + faiss index + tombstones to path (created/truncated). The caller makes it
 * durable (fsync) and atomic (write to a temp path, then rename). */
int ckf_write(const ckf_index* index, const char* path);
int ckf_read(const char* path, ckf_index** out);

#ifdef __cplusplus
}
#endif

#endif
