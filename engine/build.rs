//! Builds the XDP programs from source with clang: `bpf/floodgate.bpf.c` into
//! `$OUT_DIR/floodgate.bpf.o`, which `link::xdp::program` embeds, and
//! `bpf/reflector.bpf.c` (the XDP_TX reflector) into `$OUT_DIR/reflector.bpf.o`,
//! which only the reflector example embeds. The objects are never committed:
//! the C sources and their headers are the truth.
//!
//! Needs clang (any version with the BPF target; Debian 12's clang 14 works).
//! `CLANG=/path/to/clang` picks another one. BPF helper headers come from the
//! libbpf that libbpf-sys vendors (`DEP_BPF_INCLUDE`), falling back to the
//! system's (libbpf-dev); the kernel UAPI headers from linux-libc-dev.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each program: its source and the headers it includes (the first shared
/// with user space).
const PROGRAMS: [(&str, &[&str]); 2] =
    [("floodgate.bpf.c", &["floodgate.h", "syncookie.h", "csum.h"]), ("reflector.bpf.c", &["reflector.h", "csum.h"])];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let bpf_dir = manifest.join("../bpf");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    match Command::new(&clang).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            fail(&format!("`{clang} --version` failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim()))
        }
        Err(e) => fail(&format!(
            "cannot run `{clang}` ({e}). floodgate compiles its XDP programs \
             (bpf/*.bpf.c) with clang -target bpf: install clang \
             (`apt-get install clang llvm`, or run deploy/install-deps.sh as root), \
             or point CLANG at a clang binary"
        )),
    }

    for (source, headers) in PROGRAMS {
        let src = bpf_dir.join(source);
        println!("cargo:rerun-if-changed={}", src.display());
        for header in headers {
            println!("cargo:rerun-if-changed={}", bpf_dir.join(header).display());
        }
        let out = out_dir.join(format!("{}.o", source.trim_end_matches(".c")));
        compile(&clang, &bpf_dir, &src, &out);
    }
}

fn compile(clang: &str, bpf_dir: &Path, src: &Path, out: &Path) {
    let mut cmd = Command::new(clang);
    cmd.args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]).arg("-I").arg(bpf_dir);
    if let Some(inc) = env::var_os("DEP_BPF_INCLUDE") {
        cmd.arg("-I").arg(inc);
    }
    // <asm/types.h> and friends live in the multiarch directory, which clang
    // does not search for the BPF target.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => other,
    };
    cmd.arg(format!("-I/usr/include/{multiarch}"));
    cmd.arg("-c").arg(src).arg("-o").arg(out);

    match cmd.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => fail(&format!(
            "clang failed to build {} ({}):\n{}",
            src.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => fail(&format!("cannot run `{clang}`: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    // cargo shows a build script's stderr on failure; panic adds the exit.
    eprintln!("error: {msg}");
    panic!("floodgate build.rs: {msg}");
}
