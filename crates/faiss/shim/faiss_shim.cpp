// checkpoint-faiss shim over faiss 1.7.3's C++ API. See faiss_shim.h for the contract.
//
// Every extern "C" entry point runs its body inside guard(), which catches every C++ exception,
// stores its message in a thread-local string and returns an error code: nothing throws across
// the FFI boundary.

#include "faiss_shim.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_io.h>

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

using idx_t = faiss::Index::idx_t; // faiss 1.7.3: no namespace-level faiss::idx_t

const char kMagic[8] = {'C', 'K', 'F', 'A', 'I', 'S', 'S', '1'};
const char kEndMagic[8] = {'C', 'K', 'F', 'E', 'N', 'D', '0', '1'};

thread_local std::string g_error;

void set_error(const char* msg) noexcept {
    try {
        g_error.assign(msg ? msg : "");
    } catch (...) {
        // Allocation failed while reporting an error; leave the previous text.
    }
}

void set_error(const std::string& msg) noexcept { set_error(msg.c_str()); }

// A status-carrying exception for errors the shim detects itself.
struct ShimError {
    int code;
    std::string msg;
};

[[noreturn]] void fail(int code, std::string msg) { throw ShimError{code, std::move(msg)}; }

template <class F>
int guard(F&& f) noexcept {
    try {
        f();
        return CKF_OK;
    } catch (const ShimError& e) {
        set_error(e.msg);
        return e.code;
    } catch (const std::bad_alloc&) {
        set_error("out of memory");
        return CKF_ERR_NOMEM;
    } catch (const faiss::FaissException& e) {
        set_error(e.what());
        return CKF_ERR_FAISS;
    } catch (const std::exception& e) {
        set_error(e.what());
        return CKF_ERR_FAISS;
    } catch (...) {
        set_error("unknown C++ exception");
        return CKF_ERR_UNKNOWN;
    }
}

// Search filter for HNSW tombstones: a slot is a member unless it is marked deleted.
struct LiveSlots : faiss::IDSelector {
    const std::vector<uint8_t>* deleted;
    explicit LiveSlots(const std::vector<uint8_t>* d) : deleted(d) {}
    bool is_member(idx_t id) const override {
        return id >= 0 && static_cast<size_t>(id) < deleted->size() && !(*deleted)[id];
    }
};

// Runs the enclosed faiss call without an OpenMP team in this thread. faiss parallelises
// searches over queries, so a single query gains nothing from a team, and on a loaded 2-core
// box (video decode, detectors, builds) the fork/join barrier waits for a descheduled worker:
// measured on HNSW 100k, 128-d, load ~4: 10.5 ms per query at efSearch 32 with the team, 0.85 ms
// without (34.5 vs 10.8 ms at efSearch 512). omp_set_num_threads is per calling thread in libgomp.
struct SingleThreadScope {
    int prev = 0;
    bool active;
    explicit SingleThreadScope(bool on) : active(on) {
        if (active) {
            prev = omp_get_max_threads();
            omp_set_num_threads(1);
        }
    }
    ~SingleThreadScope() {
        if (active) omp_set_num_threads(prev);
    }
};

struct FileCloser {
    void operator()(FILE* f) const {
        if (f) std::fclose(f);
    }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

void write_all(FILE* f, const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n) fail(CKF_ERR_IO, std::string("write failed: ") + std::strerror(errno));
}

void read_all(FILE* f, void* p, size_t n, const char* what) {
    if (n && std::fread(p, 1, n, f) != n) fail(CKF_ERR_FORMAT, std::string("truncated index file (") + what + ")");
}

} // namespace

struct ckf_index {
    int kind = CKF_KIND_FLAT;
    int dim = 0;
    // Flat and HNSW: an IndexIDMap2 owning its sub-index (hnsw points into it for HNSW).
    std::unique_ptr<faiss::IndexIDMap2> map;
    faiss::IndexHNSWFlat* hnsw = nullptr;
    int hnsw_m = 0;
    // IVF: ids handled natively (add_with_ids) with a hashtable direct map, so remove_ids is
    // O(1) per id. IndexIDMap over IVF would corrupt its id map on remove: IVF does not
    // renumber the remaining internal ids the way IndexFlat does.
    std::unique_ptr<faiss::IndexIVFFlat> ivf;
    // HNSW tombstones, one byte per internal slot.
    std::vector<uint8_t> deleted;
    int64_t n_deleted = 0;

    const faiss::Index* top() const {
        return kind == CKF_KIND_IVF ? static_cast<const faiss::Index*>(ivf.get())
                                    : static_cast<const faiss::Index*>(map.get());
    }
    int64_t live() const { return top()->ntotal - n_deleted; }
    bool contains(idx_t id) const {
        if (kind == CKF_KIND_IVF) return ivf->direct_map.hashtable.count(id) != 0;
        return map->rev_map.count(id) != 0;
    }
};

namespace {

void check_handle(const ckf_index* h) {
    if (!h) fail(CKF_ERR_INVALID, "null index handle");
}

void check_dim(int32_t dim) {
    if (dim <= 0) fail(CKF_ERR_INVALID, "dimension must be positive");
}

std::unique_ptr<faiss::IndexIDMap2> make_hnsw_map(int32_t dim, int32_t m, int32_t efc, int32_t efs,
                                                  faiss::IndexHNSWFlat** raw) {
    std::unique_ptr<faiss::IndexHNSWFlat> h(new faiss::IndexHNSWFlat(dim, m, faiss::METRIC_INNER_PRODUCT));
    h->hnsw.efConstruction = efc;
    h->hnsw.efSearch = efs;
    std::unique_ptr<faiss::IndexIDMap2> map(new faiss::IndexIDMap2(h.get()));
    map->own_fields = true;
    *raw = h.release();
    return map;
}

} // namespace

extern "C" {

const char* ckf_last_error(void) { return g_error.c_str(); }

int ckf_new_flat(int32_t dim, ckf_index** out) {
    return guard([&] {
        if (!out) fail(CKF_ERR_INVALID, "null out pointer");
        check_dim(dim);
        std::unique_ptr<ckf_index> h(new ckf_index());
        h->kind = CKF_KIND_FLAT;
        h->dim = dim;
        std::unique_ptr<faiss::IndexFlatIP> flat(new faiss::IndexFlatIP(dim));
        h->map.reset(new faiss::IndexIDMap2(flat.get()));
        h->map->own_fields = true;
        flat.release();
        *out = h.release();
    });
}

int ckf_new_hnsw(int32_t dim, int32_t m, int32_t ef_construction, int32_t ef_search, ckf_index** out) {
    return guard([&] {
        if (!out) fail(CKF_ERR_INVALID, "null out pointer");
        check_dim(dim);
        if (m < 2) fail(CKF_ERR_INVALID, "HNSW M must be at least 2");
        if (ef_construction < 1 || ef_search < 1) fail(CKF_ERR_INVALID, "HNSW efConstruction and efSearch must be at least 1");
        std::unique_ptr<ckf_index> h(new ckf_index());
        h->kind = CKF_KIND_HNSW;
        h->dim = dim;
        h->hnsw_m = m;
        h->map = make_hnsw_map(dim, m, ef_construction, ef_search, &h->hnsw);
        *out = h.release();
    });
}

int ckf_new_ivf(int32_t dim, int64_t nlist, int64_t nprobe, ckf_index** out) {
    return guard([&] {
        if (!out) fail(CKF_ERR_INVALID, "null out pointer");
        check_dim(dim);
        if (nlist < 1 || nprobe < 1) fail(CKF_ERR_INVALID, "IVF nlist and nprobe must be at least 1");
        std::unique_ptr<ckf_index> h(new ckf_index());
        h->kind = CKF_KIND_IVF;
        h->dim = dim;
        std::unique_ptr<faiss::IndexFlatIP> q(new faiss::IndexFlatIP(dim));
        h->ivf.reset(new faiss::IndexIVFFlat(q.get(), dim, static_cast<size_t>(nlist), faiss::METRIC_INNER_PRODUCT));
        h->ivf->own_fields = true;
        q.release();
        h->ivf->nprobe = static_cast<size_t>(std::min(nprobe, nlist));
        h->ivf->cp.spherical = true; // unit vectors: keep centroids on the sphere
        h->ivf->set_direct_map_type(faiss::DirectMap::Hashtable);
        *out = h.release();
    });
}

void ckf_free(ckf_index* index) {
    // Destructors of faiss indexes do not throw; guard anyway so nothing can escape.
    (void)guard([&] { delete index; });
}

int ckf_info_get(const ckf_index* h, ckf_info* out) {
    return guard([&] {
        check_handle(h);
        if (!out) fail(CKF_ERR_INVALID, "null out pointer");
        ckf_info info;
        std::memset(&info, 0, sizeof info);
        info.kind = h->kind;
        info.dim = h->dim;
        info.is_trained = h->top()->is_trained ? 1 : 0;
        if (h->kind == CKF_KIND_HNSW) {
            info.hnsw_m = h->hnsw_m;
            info.hnsw_ef_construction = h->hnsw->hnsw.efConstruction;
            info.hnsw_ef_search = h->hnsw->hnsw.efSearch;
        }
        if (h->kind == CKF_KIND_IVF) {
            info.ivf_nlist = static_cast<int64_t>(h->ivf->nlist);
            info.ivf_nprobe = static_cast<int64_t>(h->ivf->nprobe);
        }
        info.live = h->live();
        info.tombstones = h->n_deleted;
        *out = info;
    });
}

int ckf_train(ckf_index* h, int64_t n, const float* x) {
    return guard([&] {
        check_handle(h);
        if (h->kind != CKF_KIND_IVF) return;
        if (n < 0 || (n > 0 && !x)) fail(CKF_ERR_INVALID, "bad training data");
        if (n < static_cast<int64_t>(h->ivf->nlist))
            fail(CKF_ERR_INVALID, "IVF training needs at least nlist (" + std::to_string(h->ivf->nlist) +
                                      ") vectors, got " + std::to_string(n));
        if (h->ivf->ntotal > 0) fail(CKF_ERR_INVALID, "cannot retrain a non-empty IVF index");
        h->ivf->train(n, x);
    });
}

int ckf_add_with_ids(ckf_index* h, int64_t n, const float* x, const int64_t* ids, int64_t* dup_id) {
    return guard([&] {
        check_handle(h);
        if (n < 0 || (n > 0 && (!x || !ids))) fail(CKF_ERR_INVALID, "bad add arguments");
        if (n == 0) return;
        if (!h->top()->is_trained) fail(CKF_ERR_NOT_TRAINED, "index must be trained before adding vectors");
        // Validate the whole batch before touching the index: all-or-nothing.
        std::unordered_set<idx_t> batch;
        batch.reserve(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] < 0) fail(CKF_ERR_INVALID, "ids must be non-negative, got " + std::to_string(ids[i]));
            if (!batch.insert(ids[i]).second || h->contains(ids[i])) {
                if (dup_id) *dup_id = ids[i];
                fail(CKF_ERR_DUPLICATE, "duplicate id " + std::to_string(ids[i]));
            }
        }
        if (h->kind == CKF_KIND_IVF) {
            h->ivf->add_with_ids(n, x, ids);
        } else {
            h->map->add_with_ids(n, x, ids);
            if (h->kind == CKF_KIND_HNSW) h->deleted.resize(static_cast<size_t>(h->map->ntotal), 0);
        }
    });
}

int ckf_search(const ckf_index* h, int64_t n, const float* x, int64_t k, float* distances, int64_t* labels) {
    return guard([&] {
        check_handle(h);
        if (n < 0 || k < 1 || (n > 0 && (!x || !distances || !labels))) fail(CKF_ERR_INVALID, "bad search arguments");
        if (n == 0) return;
        if (!h->top()->is_trained) fail(CKF_ERR_NOT_TRAINED, "index is not trained");
        SingleThreadScope single(n == 1);
        switch (h->kind) {
        case CKF_KIND_FLAT:
            h->map->search(n, x, k, distances, labels);
            break;
        case CKF_KIND_IVF:
            h->ivf->search(n, x, k, distances, labels);
            break;
        case CKF_KIND_HNSW: {
            // IndexIDMap::search rejects SearchParameters in 1.7.3, so search the HNSW directly
            // (with the tombstone filter) and translate internal slots to ids here.
            faiss::SearchParametersHNSW params;
            params.efSearch = static_cast<int>(std::min<int64_t>(std::max<int64_t>(h->hnsw->hnsw.efSearch, k), INT_MAX));
            LiveSlots sel(&h->deleted);
            if (h->n_deleted > 0) params.sel = &sel;
            h->hnsw->search(n, x, k, distances, labels, &params);
            const auto& id_map = h->map->id_map;
            for (int64_t i = 0; i < n * k; i++) {
                idx_t s = labels[i];
                labels[i] = (s >= 0 && static_cast<size_t>(s) < id_map.size()) ? id_map[s] : -1;
            }
            break;
        }
        default:
            fail(CKF_ERR_INVALID, "corrupt index handle");
        }
    });
}

int ckf_remove_ids(ckf_index* h, int64_t n, const int64_t* ids, int64_t* removed) {
    return guard([&] {
        check_handle(h);
        if (n < 0 || (n > 0 && !ids)) fail(CKF_ERR_INVALID, "bad remove arguments");
        int64_t count = 0;
        if (n > 0) {
            switch (h->kind) {
            case CKF_KIND_FLAT: {
                faiss::IDSelectorBatch sel(static_cast<size_t>(n), ids);
                count = static_cast<int64_t>(h->map->remove_ids(sel));
                break;
            }
            case CKF_KIND_IVF: {
                // The hashtable direct map only accepts IDSelectorArray (O(1) per id).
                faiss::IDSelectorArray sel(static_cast<size_t>(n), ids);
                count = static_cast<int64_t>(h->ivf->remove_ids(sel));
                break;
            }
            case CKF_KIND_HNSW: {
                auto& rev = h->map->rev_map;
                for (int64_t i = 0; i < n; i++) {
                    auto it = rev.find(ids[i]);
                    if (it == rev.end()) continue;
                    size_t slot = static_cast<size_t>(it->second);
                    rev.erase(it); // the id may be added again, to a new slot
                    if (slot < h->deleted.size() && !h->deleted[slot]) {
                        h->deleted[slot] = 1;
                        h->n_deleted++;
                        count++;
                    }
                }
                break;
            }
            default:
                fail(CKF_ERR_INVALID, "corrupt index handle");
            }
        }
        if (removed) *removed = count;
    });
}

int ckf_compact(ckf_index* h) {
    return guard([&] {
        check_handle(h);
        if (h->kind != CKF_KIND_HNSW || h->n_deleted == 0) return;
        const auto* storage = dynamic_cast<const faiss::IndexFlat*>(h->hnsw->storage);
        if (!storage) fail(CKF_ERR_INVALID, "HNSW storage is not flat");
        const float* xb = storage->get_xb();
        const size_t d = static_cast<size_t>(h->dim);
        const size_t slots = static_cast<size_t>(h->map->ntotal);
        std::vector<float> kept;
        std::vector<idx_t> kept_ids;
        const size_t live = slots - static_cast<size_t>(h->n_deleted);
        kept.reserve(live * d);
        kept_ids.reserve(live);
        for (size_t s = 0; s < slots; s++) {
            if (h->deleted[s]) continue;
            kept.insert(kept.end(), xb + s * d, xb + (s + 1) * d);
            kept_ids.push_back(h->map->id_map[s]);
        }
        faiss::IndexHNSWFlat* raw = nullptr;
        auto fresh = make_hnsw_map(h->dim, h->hnsw_m, h->hnsw->hnsw.efConstruction, h->hnsw->hnsw.efSearch, &raw);
        if (!kept_ids.empty()) fresh->add_with_ids(static_cast<idx_t>(kept_ids.size()), kept.data(), kept_ids.data());
        std::vector<uint8_t> deleted(kept_ids.size(), 0);
        // Commit (nothing below throws).
        h->map = std::move(fresh);
        h->hnsw = raw;
        h->deleted.swap(deleted);
        h->n_deleted = 0;
    });
}

int ckf_set_ef_search(ckf_index* h, int32_t ef_search) {
    return guard([&] {
        check_handle(h);
        if (h->kind != CKF_KIND_HNSW) fail(CKF_ERR_INVALID, "efSearch applies to HNSW indexes only");
        if (ef_search < 1) fail(CKF_ERR_INVALID, "efSearch must be at least 1");
        h->hnsw->hnsw.efSearch = ef_search;
    });
}

int ckf_set_nprobe(ckf_index* h, int64_t nprobe) {
    return guard([&] {
        check_handle(h);
        if (h->kind != CKF_KIND_IVF) fail(CKF_ERR_INVALID, "nprobe applies to IVF indexes only");
        if (nprobe < 1) fail(CKF_ERR_INVALID, "nprobe must be at least 1");
        h->ivf->nprobe = static_cast<size_t>(std::min<int64_t>(nprobe, static_cast<int64_t>(h->ivf->nlist)));
    });
}

// File layout: "CKFAISS1", u32 kind, faiss index (write_index), u64 tombstone count,
// tombstoned slots as i64, "CKFEND01". Tombstones come after the index so that their count
// can be checked against ntotal before anything is allocated for them.
int ckf_write(const ckf_index* h, const char* path) {
    return guard([&] {
        check_handle(h);
        if (!path) fail(CKF_ERR_INVALID, "null path");
        FilePtr f(std::fopen(path, "wb"));
        if (!f) fail(CKF_ERR_IO, std::string("cannot create ") + path + ": " + std::strerror(errno));
        write_all(f.get(), kMagic, sizeof kMagic);
        uint32_t kind = static_cast<uint32_t>(h->kind);
        write_all(f.get(), &kind, sizeof kind);
        faiss::write_index(h->top(), f.get());
        uint64_t nd = static_cast<uint64_t>(h->n_deleted);
        write_all(f.get(), &nd, sizeof nd);
        for (size_t s = 0; s < h->deleted.size(); s++) {
            if (!h->deleted[s]) continue;
            int64_t slot = static_cast<int64_t>(s);
            write_all(f.get(), &slot, sizeof slot);
        }
        write_all(f.get(), kEndMagic, sizeof kEndMagic);
        if (std::fflush(f.get()) != 0 || std::ferror(f.get()))
            fail(CKF_ERR_IO, std::string("write failed: ") + std::strerror(errno));
        FILE* raw = f.release();
        if (std::fclose(raw) != 0) fail(CKF_ERR_IO, std::string("close failed: ") + std::strerror(errno));
    });
}

int ckf_read(const char* path, ckf_index** out) {
    return guard([&] {
        if (!path || !out) fail(CKF_ERR_INVALID, "null argument");
        FilePtr f(std::fopen(path, "rb"));
        if (!f) fail(CKF_ERR_IO, std::string("cannot open ") + path + ": " + std::strerror(errno));
        char magic[8];
        read_all(f.get(), magic, sizeof magic, "header");
        if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) fail(CKF_ERR_FORMAT, "not a checkpoint-faiss index file (bad magic)");
        uint32_t kind = 0;
        read_all(f.get(), &kind, sizeof kind, "header");
        std::unique_ptr<faiss::Index> idx(faiss::read_index(f.get(), 0));
        std::unique_ptr<ckf_index> h(new ckf_index());
        h->kind = static_cast<int>(kind);
        h->dim = static_cast<int>(idx->d);
        if (idx->metric_type != faiss::METRIC_INNER_PRODUCT) fail(CKF_ERR_FORMAT, "index metric is not inner product");
        switch (kind) {
        case CKF_KIND_FLAT:
        case CKF_KIND_HNSW: {
            auto* map = dynamic_cast<faiss::IndexIDMap2*>(idx.get());
            if (!map || !map->index) fail(CKF_ERR_FORMAT, "expected an IndexIDMap2");
            if (kind == CKF_KIND_FLAT) {
                if (!dynamic_cast<faiss::IndexFlat*>(map->index)) fail(CKF_ERR_FORMAT, "expected IndexIDMap2 over IndexFlatIP");
            } else {
                h->hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(map->index);
                if (!h->hnsw || !dynamic_cast<const faiss::IndexFlat*>(h->hnsw->storage))
                    fail(CKF_ERR_FORMAT, "expected IndexIDMap2 over IndexHNSWFlat");
                h->hnsw_m = h->hnsw->hnsw.nb_neighbors(1);
                h->deleted.assign(static_cast<size_t>(map->ntotal), 0);
            }
            if (map->id_map.size() != static_cast<size_t>(map->ntotal)) fail(CKF_ERR_FORMAT, "id map size mismatch");
            map->own_fields = true;
            idx.release();
            h->map.reset(map);
            h->map->construct_rev_map();
            break;
        }
        case CKF_KIND_IVF: {
            auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(idx.get());
            if (!ivf) fail(CKF_ERR_FORMAT, "expected an IndexIVFFlat");
            if (ivf->direct_map.type != faiss::DirectMap::Hashtable) fail(CKF_ERR_FORMAT, "IVF index lacks its id hashtable");
            idx.release();
            h->ivf.reset(ivf);
            break;
        }
        default:
            fail(CKF_ERR_FORMAT, "unknown index kind " + std::to_string(kind));
        }
        uint64_t nd = 0;
        read_all(f.get(), &nd, sizeof nd, "tombstones");
        if (nd > 0 && h->kind != CKF_KIND_HNSW) fail(CKF_ERR_FORMAT, "tombstones in a non-HNSW index");
        if (nd > static_cast<uint64_t>(h->top()->ntotal)) fail(CKF_ERR_FORMAT, "more tombstones than vectors");
        for (uint64_t i = 0; i < nd; i++) {
            int64_t slot = 0;
            read_all(f.get(), &slot, sizeof slot, "tombstones");
            if (slot < 0 || static_cast<uint64_t>(slot) >= h->deleted.size() || h->deleted[slot])
                fail(CKF_ERR_FORMAT, "bad tombstone slot");
            h->deleted[slot] = 1;
            h->n_deleted++;
            // construct_rev_map keeps the last slot of an id; drop it only if it is this one.
            idx_t id = h->map->id_map[slot];
            auto it = h->map->rev_map.find(id);
            if (it != h->map->rev_map.end() && it->second == slot) h->map->rev_map.erase(it);
        }
        read_all(f.get(), magic, sizeof magic, "trailer");
        if (std::memcmp(magic, kEndMagic, sizeof kEndMagic) != 0) fail(CKF_ERR_FORMAT, "bad trailer");
        *out = h.release();
    });
}

} // extern "C"
