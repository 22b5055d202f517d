//! Raw bindings to `shim/faiss_shim.h`. Keep in sync with that header.

use std::os::raw::{c_char, c_int};

#[repr(C)]
pub struct CkfIndex {
    _private: [u8; 0],
}

pub const CKF_OK: c_int = 0;
pub const CKF_ERR_FAISS: c_int = 1;
pub const CKF_ERR_INVALID: c_int = 2;
pub const CKF_ERR_DUPLICATE: c_int = 3;
pub const CKF_ERR_IO: c_int = 4;
pub const CKF_ERR_FORMAT: c_int = 5;
pub const CKF_ERR_NOMEM: c_int = 6;
pub const CKF_ERR_UNKNOWN: c_int = 7;
pub const CKF_ERR_NOT_TRAINED: c_int = 8;

pub const CKF_KIND_FLAT: i32 = 0;
pub const CKF_KIND_HNSW: i32 = 1;
pub const CKF_KIND_IVF: i32 = 2;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CkfInfo {
    pub kind: i32,
    pub dim: i32,
    pub is_trained: i32,
    pub hnsw_m: i32,
    pub hnsw_ef_construction: i32,
    pub hnsw_ef_search: i32,
    pub ivf_nlist: i64,
    pub ivf_nprobe: i64,
    pub live: i64,
    pub tombstones: i64,
}

extern "C" {
    pub fn ckf_last_error() -> *const c_char;

    pub fn ckf_new_flat(dim: i32, out: *mut *mut CkfIndex) -> c_int;
    pub fn ckf_new_hnsw(
        dim: i32,
        m: i32,
        ef_construction: i32,
        ef_search: i32,
        out: *mut *mut CkfIndex,
    ) -> c_int;
    pub fn ckf_new_ivf(dim: i32, nlist: i64, nprobe: i64, out: *mut *mut CkfIndex) -> c_int;
    pub fn ckf_free(index: *mut CkfIndex);

    pub fn ckf_info_get(index: *const CkfIndex, out: *mut CkfInfo) -> c_int;
    pub fn ckf_train(index: *mut CkfIndex, n: i64, x: *const f32) -> c_int;
    pub fn ckf_add_with_ids(
        index: *mut CkfIndex,
        n: i64,
        x: *const f32,
        ids: *const i64,
        dup_id: *mut i64,
    ) -> c_int;
    pub fn ckf_search(
        index: *const CkfIndex,
        n: i64,
        x: *const f32,
        k: i64,
        distances: *mut f32,
        labels: *mut i64,
    ) -> c_int;
    pub fn ckf_remove_ids(
        index: *mut CkfIndex,
        n: i64,
        ids: *const i64,
        removed: *mut i64,
    ) -> c_int;
    pub fn ckf_compact(index: *mut CkfIndex) -> c_int;
    pub fn ckf_set_ef_search(index: *mut CkfIndex, ef_search: i32) -> c_int;
    pub fn ckf_set_nprobe(index: *mut CkfIndex, nprobe: i64) -> c_int;
    pub fn ckf_write(index: *const CkfIndex, path: *const c_char) -> c_int;
    pub fn ckf_read(path: *const c_char, out: *mut *mut CkfIndex) -> c_int;
}
