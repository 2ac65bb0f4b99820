//! The `mlgate` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

// musl's malloc serialises threads on one lock; the scoring workers and the server allocate
// from several threads at once (BENCHMARKS.md, "Static binary").
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v3's `include/mimalloc.h`, the version
/// `libmimalloc-sys` builds without its `v2` feature); the crate exports no name for it.
#[cfg(target_env = "musl")]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

#[cfg(target_env = "musl")]
unsafe extern "C" {
    /// mimalloc's `void mi_option_set(mi_option_t option, long value)`.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn main() -> ExitCode {
    // mimalloc's arenas are large enough for transparent huge pages, and the kernel clears a
    // whole 2 MiB page at each first touch: `build` spent 4.1 s in the kernel against 0.3 s with
    // them off for this process (1 M rows; what MIMALLOC_ALLOW_THP=0 does, without the variable).
    #[cfg(all(target_env = "musl", target_os = "linux"))]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes no pointer and changes only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // mimalloc gives freed memory back to the system only 10 ms after it is freed (100 ms for its
    // arenas), and a build frees and allocates large buffers faster than that: the 5 M-row
    // build's peak was 579 MB against 360 MB with memory given back at once (65.3 s against
    // 66.0 s; glibc's malloc: 372 MB). What MIMALLOC_PURGE_DELAY=0 does, without the variable;
    // a delay the variable sets is left as it is.
    #[cfg(target_env = "musl")]
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set takes two integers; the option is one mimalloc's header declares.
        unsafe {
            mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
    mlgate::cli::exit_quietly_on_closed_pipe();
    let cli = mlgate::cli::Cli::parse();
    mlgate::cli::execute(|sh| cli.command.run(sh))
}

/// musl's `memcpy` starts every copy with `rep movsq`, whose start-up cost dominates the few-byte
/// copies that formatting and CSV output make by the million (BENCHMARKS.md, "Static binary").
/// This one copies up to 32 bytes with two overlapping loads and stores, up to 256 in 32-byte
/// steps, and longer runs with `rep movsb` (fast on every x86_64 with ERMS). Linked before libc.a, it is the binary's memcpy.
///
/// # Safety
///
/// As C's `memcpy`: `dest` and `src` valid for `n` bytes, not overlapping.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy_forward(dest, src, n) }
}

/// The copy behind [`memcpy`] and [`__memcpy_fwd`], compiled on every x86_64 so that its tests
/// run on the build machine: reads every byte of a short copy before it writes, and copies longer
/// ones front to back, so a destination below an overlapping source is right too.
///
/// # Safety
///
/// `dest` and `src` valid for `n` bytes; `dest` not above `src` when they overlap.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(target_env = "musl"), allow(dead_code))]
unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; every access below stays within [0, n).
    unsafe {
        if n <= 16 {
            if n >= 8 {
                let a = src.cast::<u64>().read_unaligned();
                let b = src.add(n - 8).cast::<u64>().read_unaligned();
                dest.cast::<u64>().write_unaligned(a);
                dest.add(n - 8).cast::<u64>().write_unaligned(b);
            } else if n >= 4 {
                let a = src.cast::<u32>().read_unaligned();
                let b = src.add(n - 4).cast::<u32>().read_unaligned();
                dest.cast::<u32>().write_unaligned(a);
                dest.add(n - 4).cast::<u32>().write_unaligned(b);
            } else if n > 0 {
                let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dest = a;
                *dest.add(n / 2) = b;
                *dest.add(n - 1) = c;
            }
            return dest;
        }
        if n <= 32 {
            let a = src.cast::<u128>().read_unaligned();
            let b = src.add(n - 16).cast::<u128>().read_unaligned();
            dest.cast::<u128>().write_unaligned(a);
            dest.add(n - 16).cast::<u128>().write_unaligned(b);
            return dest;
        }
        if n <= 256 {
            // 32 bytes at a time, the last 32 (overlapping the loop's end) read before anything
            // is written: right for a forward overlap too.
            let tail =
                (src.add(n - 32).cast::<u128>().read_unaligned(), src.add(n - 16).cast::<u128>().read_unaligned());
            let mut at = 0;
            while at + 32 < n {
                let a = src.add(at).cast::<u128>().read_unaligned();
                let b = src.add(at + 16).cast::<u128>().read_unaligned();
                dest.add(at).cast::<u128>().write_unaligned(a);
                dest.add(at + 16).cast::<u128>().write_unaligned(b);
                at += 32;
            }
            dest.add(n - 32).cast::<u128>().write_unaligned(tail.0);
            dest.add(n - 16).cast::<u128>().write_unaligned(tail.1);
            return dest;
        }
        std::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
        dest
    }
}

/// musl's `memmove` copies forwards through `__memcpy_fwd`, which lives beside `memcpy` in
/// libc.a: defined here too, so that its `memcpy` is not linked in beside ours; the copy is right
/// for a destination below an overlapping source, the only overlap memmove sends here.
///
/// # Safety
///
/// As musl's `__memcpy_fwd`: `dest` and `src` valid for `n` bytes, `dest` not above `src` when
/// they overlap.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn __memcpy_fwd(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy_forward(dest, src, n) }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    /// Every length up to 600 at several offsets, apart and overlapping forwards, against a
    /// byte-by-byte reference.
    #[test]
    fn the_copy_copies_every_length_apart_and_forwards_over_itself() {
        let pattern: Vec<u8> = (0..2048u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for n in 0..600 {
            for offset in [0, 1, 7, 13] {
                let mut out = vec![0u8; 1400];
                let expected = pattern[offset..offset + n].to_vec();
                // SAFETY: both ranges lie inside their buffers and do not overlap.
                unsafe { super::copy_forward(out.as_mut_ptr().add(3), pattern.as_ptr().add(offset), n) };
                assert_eq!(&out[3..3 + n], &expected[..], "n {n}, offset {offset}");
                assert!(out[..3].iter().chain(&out[3 + n..]).all(|&b| b == 0), "n {n}: wrote outside");
                for shift in [1, 5, 16, 31, 40] {
                    let mut buffer = pattern[..n + shift].to_vec();
                    let expected = buffer[shift..].to_vec();
                    // SAFETY: the destination starts `shift` bytes below the source, inside one buffer.
                    unsafe { super::copy_forward(buffer.as_mut_ptr(), buffer.as_ptr().add(shift), n) };
                    assert_eq!(&buffer[..n], &expected[..], "n {n}, overlapping by {shift}");
                }
            }
        }
    }
}
