//! `memcpy` and `memmove` for the static x86_64 musl build.
//!
//! musl's x86_64 `memcpy` is one `rep movsq` with byte `movsb`s on either side,
//! at any size; a proxied request makes about a hundred copies, most of them a
//! few dozen bytes (header names and values, buffers), where each microcoded
//! string instruction costs tens of cycles, far more than a few vector moves.
//! These two replace musl's in that build only (the linker takes the first
//! definition and never pulls musl's `memcpy.o`; `memmove` must go too, as
//! musl's jumps into `memcpy.o`). glibc builds and aarch64 (whose musl copy is
//! already an unrolled one) keep their libc's: there the routines are only
//! built as `planb_memcpy`/`planb_memmove`, for the tests below.
//!
//! How, as glibc and Bionic do it: a copy of up to 64 bytes loads all of it
//! into registers (overlapping loads at both ends) before storing any, so it
//! is also a correct `memmove`; longer copies run a 32-byte SSE2 loop, with
//! the far end (forward) or the near end (backward) loaded before the loop
//! and stored after it; 2 KiB and more without overlap is one `rep movsb`
//! (fast on every x86_64 with ERMS). Written in assembly so that the compiler
//! cannot turn the loop back into a call to `memcpy`.

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl planb_memcpy",
    ".type planb_memcpy, @function",
    // rdi: dst, rsi: src, rdx: n; returns dst in rax.
    "planb_memcpy:",
    "    mov rax, rdi",
    "    cmp rdx, 16",
    "    jb 20f",
    "    cmp rdx, 32",
    "    ja 3f",
    // 16..=32: both ends
    "    movdqu xmm0, [rsi]",
    "    movdqu xmm1, [rsi + rdx - 16]",
    "    movdqu [rdi], xmm0",
    "    movdqu [rdi + rdx - 16], xmm1",
    "    ret",
    "3:",
    "    cmp rdx, 64",
    "    ja 4f",
    // 33..=64: two from each end
    "    movdqu xmm0, [rsi]",
    "    movdqu xmm1, [rsi + 16]",
    "    movdqu xmm2, [rsi + rdx - 32]",
    "    movdqu xmm3, [rsi + rdx - 16]",
    "    movdqu [rdi], xmm0",
    "    movdqu [rdi + 16], xmm1",
    "    movdqu [rdi + rdx - 32], xmm2",
    "    movdqu [rdi + rdx - 16], xmm3",
    "    ret",
    "4:",
    "    cmp rdx, 2048",
    "    jb 5f",
    "    mov rcx, rdx",
    "    rep movsb",
    "    ret",
    // 65.. forward: the last 32 bytes are loaded first, so a destination
    // below an overlapping source (memmove) never reads a byte it wrote.
    "5:",
    "    movdqu xmm2, [rsi + rdx - 32]",
    "    movdqu xmm3, [rsi + rdx - 16]",
    "    lea rcx, [rdi + rdx - 32]",
    "6:",
    "    movdqu xmm0, [rsi]",
    "    movdqu xmm1, [rsi + 16]",
    "    movdqu [rdi], xmm0",
    "    movdqu [rdi + 16], xmm1",
    "    add rsi, 32",
    "    add rdi, 32",
    "    sub rdx, 32",
    "    cmp rdx, 32",
    "    ja 6b",
    "    movdqu [rcx], xmm2",
    "    movdqu [rcx + 16], xmm3",
    "    ret",
    // 0..=15
    "20:",
    "    cmp edx, 8",
    "    jb 21f",
    "    mov rcx, [rsi]",
    "    mov r8, [rsi + rdx - 8]",
    "    mov [rdi], rcx",
    "    mov [rdi + rdx - 8], r8",
    "    ret",
    "21:",
    "    cmp edx, 4",
    "    jb 22f",
    "    mov ecx, [rsi]",
    "    mov r8d, [rsi + rdx - 4]",
    "    mov [rdi], ecx",
    "    mov [rdi + rdx - 4], r8d",
    "    ret",
    "22:",
    "    test edx, edx",
    "    jz 23f",
    // 1..=3: first, middle, last
    "    movzx ecx, byte ptr [rsi]",
    "    movzx r8d, byte ptr [rsi + rdx - 1]",
    "    mov r9, rdx",
    "    shr r9, 1",
    "    movzx r10d, byte ptr [rsi + r9]",
    "    mov [rdi], cl",
    "    mov [rdi + r9], r10b",
    "    mov [rdi + rdx - 1], r8b",
    "23:",
    "    ret",
    ".size planb_memcpy, . - planb_memcpy",
    "",
    ".p2align 4",
    ".globl planb_memmove",
    ".type planb_memmove, @function",
    "planb_memmove:",
    "    cmp rdx, 64",
    "    jbe planb_memcpy",
    "    mov rax, rdi",
    // dst - src < n (unsigned): the destination starts inside the source
    // (or at it): backward.
    "    mov rcx, rdi",
    "    sub rcx, rsi",
    "    cmp rcx, rdx",
    "    jb 7f",
    // src - dst < n: the source starts inside the destination: forward,
    // without rep movsb (not defined for that overlap).
    "    mov rcx, rsi",
    "    sub rcx, rdi",
    "    cmp rcx, rdx",
    "    jb 5b",
    "    jmp planb_memcpy",
    // 65.. backward: the first 32 bytes are loaded first.
    "7:",
    "    movdqu xmm2, [rsi]",
    "    movdqu xmm3, [rsi + 16]",
    "    mov rcx, rdi",
    "8:",
    "    movdqu xmm0, [rsi + rdx - 16]",
    "    movdqu xmm1, [rsi + rdx - 32]",
    "    movdqu [rdi + rdx - 16], xmm0",
    "    movdqu [rdi + rdx - 32], xmm1",
    "    sub rdx, 32",
    "    cmp rdx, 32",
    "    ja 8b",
    "    movdqu [rcx], xmm2",
    "    movdqu [rcx + 16], xmm3",
    "    ret",
    ".size planb_memmove, . - planb_memmove",
);

// The libc names, in the static musl build only.
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
std::arch::global_asm!(
    ".globl memcpy",
    ".type memcpy, @function",
    ".set memcpy, planb_memcpy",
    ".globl memmove",
    ".type memmove, @function",
    ".set memmove, planb_memmove",
);

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    extern "C" {
        fn planb_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        fn planb_memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
    }

    /// Every length to 300 and a spread of longer ones, around each copy
    /// path's edges (16, 32, 64, the 32-byte loop, 2048 for rep movsb).
    fn lengths() -> impl Iterator<Item = usize> {
        (0..=300).chain([511, 512, 513, 1000, 2047, 2048, 2049, 4095, 4096, 10_001])
    }

    /// A byte pattern where no two nearby bytes are equal, so a shifted or
    /// short copy shows.
    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + seed * 13 + 1) as u8).collect()
    }

    #[test]
    fn memcpy_copies_every_length_at_every_alignment_and_nothing_else() {
        for n in lengths() {
            for src_off in 0..16 {
                for dst_off in [0, 1, 3, 7, 8, 15] {
                    let src = pattern(n + 32, src_off);
                    let mut dst = vec![0xAAu8; n + 64];
                    let ret = unsafe {
                        planb_memcpy(
                            dst.as_mut_ptr().add(16 + dst_off),
                            src.as_ptr().add(src_off),
                            n,
                        )
                    };
                    assert_eq!(ret, unsafe { dst.as_mut_ptr().add(16 + dst_off) });
                    let at = 16 + dst_off;
                    assert_eq!(&dst[at..at + n], &src[src_off..src_off + n], "n {n}");
                    assert!(dst[..at].iter().all(|&b| b == 0xAA), "before, n {n}");
                    assert!(dst[at + n..].iter().all(|&b| b == 0xAA), "after, n {n}");
                }
            }
        }
    }

    #[test]
    fn memmove_is_right_for_every_overlap_in_both_directions() {
        for n in lengths() {
            let shifts = (-70isize..=70).chain([-(n as isize) - 1, n as isize + 1]);
            for shift in shifts {
                let room = n + 2 * 72 + 2;
                let base = 72 + n.min(1) as isize;
                let src_at = base as usize;
                let dst_at = (base + shift).clamp(0, (room - n) as isize) as usize;
                let mut buf = pattern(room, n);
                let mut want = buf.clone();
                want.copy_within(src_at..src_at + n, dst_at);
                let p = buf.as_mut_ptr();
                let ret = unsafe { planb_memmove(p.add(dst_at), p.add(src_at), n) };
                assert_eq!(ret, unsafe { p.add(dst_at) });
                assert!(buf == want, "n {n} shift {shift}");
            }
        }
    }
}
