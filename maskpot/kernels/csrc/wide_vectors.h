/* MASKPOT_WIDE_VECTORS_BEGIN / _END around loops that GCC should auto-vectorise with the CPU's full vector width.

   GCC auto-vectorises with 256-bit vectors on AVX-512 CPUs unless told otherwise (-mprefer-vector-width): the edge
   loops of the fused operators are faster with the full width. In the source, not in the build flags, so that
   every build of these loops (lammps/CMakeLists.txt, benchmarks/kernels_ab.py) has it. Functions defined between
   the two are compiled with it; a caller outside does not inline them when they are marked MASKPOT_OUTLINE, so
   that their loops keep it. */

#ifndef MASKPOT_WIDE_VECTORS_H
#define MASKPOT_WIDE_VECTORS_H

#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#define MASKPOT_WIDE_VECTORS_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"prefer-vector-width=512\")")
#define MASKPOT_WIDE_VECTORS_END _Pragma("GCC pop_options")
#else
#define MASKPOT_WIDE_VECTORS_BEGIN
#define MASKPOT_WIDE_VECTORS_END
#endif

#define MASKPOT_INLINE inline __attribute__((always_inline))
#define MASKPOT_OUTLINE __attribute__((noinline))

#endif
