//! Compiles the C++ shim over faiss's C++ API and links Debian's static `libfaiss.a`.
//!
//! Debian 12's `libfaiss-dev` (1.7.3) ships only the static C++ library and headers, no C API.
//! Link order that works: the shim, then `static=faiss`, then `openblas`, `lapack`, `gomp`,
//! `stdc++`. `FAISS_LIB_DIR` / `FAISS_INCLUDE_DIR` override the default system locations.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=shim/faiss_shim.cpp");
    println!("cargo:rerun-if-changed=shim/faiss_shim.h");
    println!("cargo:rerun-if-env-changed=FAISS_LIB_DIR");
    println!("cargo:rerun-if-env-changed=FAISS_INCLUDE_DIR");

    let mut build = cc::Build::new();
    build
        .cpp(true)
        // stdc++ is linked explicitly below, after faiss, to keep the order that works.
        .cpp_link_stdlib(None)
        .file("shim/faiss_shim.cpp")
        .include("shim")
        .flag("-std=c++17")
        .flag("-fopenmp")
        .flag_if_supported("-Wno-unused-parameter")
        // faiss is prebuilt and optimised; the shim itself should be too, whatever the profile.
        .opt_level(2);
    if let Some(inc) = env::var_os("FAISS_INCLUDE_DIR") {
        build.include(inc);
    }
    build.compile("checkpoint_faiss_shim");

    // rustc bundles static libraries itself and only looks in -L paths, not in the linker's
    // default ones, so the directory of libfaiss.a must be named.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let candidates: Vec<PathBuf> = env::var_os("FAISS_LIB_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from(format!("/usr/lib/{arch}-linux-gnu")),
            PathBuf::from("/usr/local/lib"),
            PathBuf::from("/usr/lib"),
        ])
        .collect();
    match candidates.iter().find(|d| d.join("libfaiss.a").is_file()) {
        Some(dir) => println!("cargo:rustc-link-search=native={}", dir.display()),
        None => println!(
            "cargo:warning=libfaiss.a not found in {candidates:?}: install libfaiss-dev or set FAISS_LIB_DIR"
        ),
    }
    println!("cargo:rustc-link-lib=static=faiss");
    println!("cargo:rustc-link-lib=dylib=openblas");
    println!("cargo:rustc-link-lib=dylib=lapack");
    println!("cargo:rustc-link-lib=dylib=gomp");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
