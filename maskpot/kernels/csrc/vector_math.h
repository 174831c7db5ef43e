/* exp for the elementwise loops of the fused operators, written so that GCC vectorises the loops that call it.

   A call of std::exp is not vectorised (glibc's vector exp needs -ffast-math, which would change the rounding of
   every other operation), and EGNN's edge MLP evaluates three sigmoids per edge and channel. Range reduction
   x = n ln2 + r, |r| <= ln2 / 2 (n the nearest integer), a Taylor polynomial of exp(r) (degree 13 in double, 8
   in float: truncation below the type's epsilon) and 2^n from the exponent bits. Arguments are clamped to where
   exp is finite and normal. */

#ifndef MASKPOT_VECTOR_MATH_H
#define MASKPOT_VECTOR_MATH_H

#include <cstdint>
#include <type_traits>

#include "wide_vectors.h"

namespace maskpot {

constexpr double inverse_factorial(int k) { return k <= 1 ? 1.0 : inverse_factorial(k - 1) / k; }

// sum_{k=K..D} r^(k-K) / k!, by Horner's rule, unrolled at compile time (a loop over a table of coefficients
// kept GCC from vectorising the callers' loops)
template <typename T, int K, int D> MASKPOT_INLINE T taylor_tail(T r)
{
  if constexpr (K == D)
    return static_cast<T>(inverse_factorial(D));
  else
    return taylor_tail<T, K + 1, D>(r) * r + static_cast<T>(inverse_factorial(K));
}

template <typename T> MASKPOT_INLINE T vector_exp(T x)
{
  using Bits = std::conditional_t<std::is_same_v<T, double>, int64_t, int32_t>;
  constexpr bool D = std::is_same_v<T, double>;
  constexpr int MANTISSA = D ? 52 : 23, BIAS = D ? 1023 : 127, DEGREE = D ? 13 : 8;
  constexpr T HI = D ? T(709.0) : T(88.0), LO = D ? T(-708.0) : T(-87.0);
  constexpr T LOG2E = T(1.4426950408889634), LN2_HI = T(0.693145751953125), LN2_LO = T(1.4286068203094173e-06);
  x = x > HI ? HI : (x < LO ? LO : x);
  // n = x log2(e) rounded to the nearest integer by adding and subtracting 1.5 2^MANTISSA (std::floor would
  // keep the loop scalar)
  constexpr T ROUND = D ? T(6755399441055744.0) : T(12582912.0);
  const T n = (x * LOG2E + ROUND) - ROUND;
  const T r = (x - n * LN2_HI) - n * LN2_LO;
  const T p = taylor_tail<T, 0, DEGREE>(r);
  const Bits bits = static_cast<Bits>(static_cast<Bits>(n) + BIAS) << MANTISSA;
  return p * __builtin_bit_cast(T, bits);
}

template <typename T> MASKPOT_INLINE T vector_sigmoid(T x) { return T(1) / (T(1) + vector_exp(-x)); }

}    // namespace maskpot

#endif
