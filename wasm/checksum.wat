;; Theory of operation: the Internet checksum (RFC 1071) with 128-bit SIMD.
;;
;; `sum(p, n)` returns the one's-complement sum of the bytes [p, p+n) taken as
;; big-endian 16-bit words, folded to 16 bits: exactly `fold(sum(v, o, n))` of
;; the JS loop in src/wire/checksum.ts (an odd last byte is padded with a zero
;; on the right, RFC 1071 §4.1). It is 0 only when every byte is 0.
;;
;; - Byte order (RFC 1071 §2(B)): wasm loads are little-endian, so every word
;;   arrives byte-swapped. The one's-complement sum of swapped words is the
;;   swapped sum, so the kernel sums as loaded and swaps the folded result
;;   once. An odd last byte loaded alone lands in the low half, which the
;;   final swap moves to the high half: the RFC's right-hand zero padding.
;; - Wider units (RFC 1071 §2(C)): 2^16 = 1 (mod 0xffff), so a 32- or 64-bit
;;   little-endian load is just as good a summand as its 16-bit halves; the
;;   tail uses them, and all carries are folded once at the end.
;; - The loop takes 32 bytes per turn into two accumulators of four u32 lanes
;;   (`i32x4.extadd_pairwise_i16x8_u` adds neighbouring words, so each lane
;;   gains at most 2 * 0xffff = 0x1fffe per turn). A lane would wrap after
;;   2^32 / 0x1fffe = 32768 turns, and adding the two accumulators halves that,
;;   so the lanes are widened into the i64 total every BLOCK = 512 KiB (16384
;;   turns: each lane <= 0x7fff8000, the pair <= 0xffff0000). Any n is safe.
;; - The pointer may have any alignment and `n` any value; wasm traps on
;;   reads past the memory's end, so the caller keeps [p, p+n) inside it.
;;
;; The memory is fixed at 256 pages (16 MiB) with a maximum equal to its
;; minimum, so it can never grow: growing would detach every JS view of it,
;; and src/wire/checksum.ts hands out long-lived views (`simdBuffer`).
(module
  (memory (export "memory") 256 256)

  (func (export "sum") (param $p i32) (param $n i32) (result i32)
    (local $end i32)   ;; end of the 32-byte turns, then end of the data
    (local $stop i32)  ;; end of the current block
    (local $a v128)
    (local $b v128)
    (local $s i64)     ;; running total (a 64-bit sum of little-endian units)
    (local $w i64)
    (local $x i32)
    (local.set $end (i32.add (local.get $p) (i32.and (local.get $n) (i32.const -32))))

    ;; Blocks of up to 512 KiB, each widened into $s before a lane can wrap.
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $stop
          (select
            (local.get $end)
            (i32.add (local.get $p) (i32.const 0x80000))
            (i32.le_u (i32.sub (local.get $end) (local.get $p)) (i32.const 0x80000))))
        (local.set $a (v128.const i64x2 0 0))
        (local.set $b (v128.const i64x2 0 0))
        (loop $turns
          (local.set $a (i32x4.add (local.get $a) (i32x4.extadd_pairwise_i16x8_u (v128.load (local.get $p)))))
          (local.set $b (i32x4.add (local.get $b) (i32x4.extadd_pairwise_i16x8_u (v128.load offset=16 (local.get $p)))))
          (local.set $p (i32.add (local.get $p) (i32.const 32)))
          (br_if $turns (i32.lt_u (local.get $p) (local.get $stop))))
        (local.set $a (i32x4.add (local.get $a) (local.get $b)))
        (local.set $s
          (i64.add (local.get $s)
            (i64.add
              (i64.add (i64.extend_i32_u (i32x4.extract_lane 0 (local.get $a)))
                       (i64.extend_i32_u (i32x4.extract_lane 1 (local.get $a))))
              (i64.add (i64.extend_i32_u (i32x4.extract_lane 2 (local.get $a)))
                       (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $a)))))))
        (br $blocks)))

    ;; The last n & 31 bytes: 8, 4, 2, then 1 at a time.
    (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 31))))
    (block $eights_done
      (loop $eights
        (br_if $eights_done (i32.lt_u (i32.sub (local.get $end) (local.get $p)) (i32.const 8)))
        (local.set $w (i64.load (local.get $p)))
        (local.set $s
          (i64.add (local.get $s)
            (i64.add (i64.and (local.get $w) (i64.const 0xffffffff)) (i64.shr_u (local.get $w) (i64.const 32)))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $eights)))
    (if (i32.ge_u (i32.sub (local.get $end) (local.get $p)) (i32.const 4))
      (then
        (local.set $s (i64.add (local.get $s) (i64.load32_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
    (if (i32.ge_u (i32.sub (local.get $end) (local.get $p)) (i32.const 2))
      (then
        (local.set $s (i64.add (local.get $s) (i64.load16_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 2)))))
    (if (i32.lt_u (local.get $p) (local.get $end))
      (then (local.set $s (i64.add (local.get $s) (i64.load8_u (local.get $p))))))

    ;; Fold 64 -> 32 bits twice (the second cannot carry out), then 32 -> 16
    ;; twice (the first leaves at most 0x1fffe), then swap to big-endian.
    (local.set $s (i64.add (i64.and (local.get $s) (i64.const 0xffffffff)) (i64.shr_u (local.get $s) (i64.const 32))))
    (local.set $x (i32.wrap_i64 (i64.add (i64.and (local.get $s) (i64.const 0xffffffff)) (i64.shr_u (local.get $s) (i64.const 32)))))
    (local.set $x (i32.add (i32.and (local.get $x) (i32.const 0xffff)) (i32.shr_u (local.get $x) (i32.const 16))))
    (local.set $x (i32.add (i32.and (local.get $x) (i32.const 0xffff)) (i32.shr_u (local.get $x) (i32.const 16))))
    (i32.or
      (i32.shl (i32.and (local.get $x) (i32.const 0xff)) (i32.const 8))
      (i32.shr_u (local.get $x) (i32.const 8))))
)
