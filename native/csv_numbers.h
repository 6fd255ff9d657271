// The number scanners of the CSV fast path, a port of those in src/importer/row-coercion.ts
// (scanNumber, scanFloat32, scanNumberSlow, parseDecimal, scanEventTime). They must take exactly
// the same texts and give the same doubles, so they follow the JS step by step, with one
// freedom: where the JS calls Number(text) (a long or exponent form, after checking its grammar),
// this calls strtod_l in the C locale. Both are correctly rounded (ECMA-262 asks it of Number;
// glibc's strtod is exact), so both give the nearest double. Everything else is the same IEEE
// double arithmetic in the same order (the build passes -ffp-contract=off: no fused multiply-add).
//
// Positions are size_t offsets into b; a scanner never reads at or past `e`.
#ifndef STRATA_CSV_NUMBERS_H_
#define STRATA_CSV_NUMBERS_H_

#include <locale.h>
#include <stdlib.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

namespace strata {
namespace csv {

constexpr size_t kFail = static_cast<size_t>(-1);

constexpr double kPow10[] = {1,    1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

inline bool IsDigit(uint8_t c) { return unsigned(c - '0') <= 9; }

inline bool MatchAscii(const uint8_t* b, size_t s, size_t e, const char* word) {
  size_t n = 0;
  while (word[n] != 0) n++;
  if (e - s != n) return false;
  for (size_t i = 0; i < n; i++)
    if (b[s + i] != uint8_t(word[i])) return false;
  return true;
}

// What scanPlainDecimal read: `[-]digits[.digits]`, the mantissa summed as a double (exact up to
// 15 digits), the number of digits and of fraction digits.
struct Plain {
  bool neg;
  double mant;
  size_t nd;
  size_t frac;
};

// The digits are summed as an integer (a double multiply-add per digit is a chain of 8 cycles a
// digit; an integer one 2): exact up to 19 digits, so `mant` is the same double as the JS sum
// up to 15 digits, where the callers use it as exact. Past 15 they use it only as an
// approximation within 2^-45 (the float32 bracket), which (double)integer is too, up to 19
// digits; past 19 the digits are summed again as the JS does.
inline size_t ScanPlainDecimal(const uint8_t* b, size_t s, size_t e, Plain* out) {
  size_t p = s;
  bool neg = false;
  if (p < e && b[p] == '-') {
    neg = true;
    p++;
  }
  const size_t ds = p;
  uint64_t imant = 0;
  while (p < e && IsDigit(b[p])) {
    imant = imant * 10 + (b[p] - '0');  // wraps past 19 digits: then not used
    p++;
  }
  size_t nd = p - ds;
  size_t frac = 0;
  size_t point = p;
  if (p < e && b[p] == '.') {
    p++;
    const size_t fs = p;
    while (p < e && IsDigit(b[p])) {
      imant = imant * 10 + (b[p] - '0');
      p++;
    }
    frac = p - fs;
    nd += frac;
  }
  double mant = double(imant);
  if (nd > 19) {
    mant = 0;
    for (size_t q = ds; q < p; q++)
      if (q != point) mant = mant * 10 + (b[q] - '0');
  }
  *out = Plain{neg, mant, nd, frac};
  return p;
}

// Bytes after which a fast-path number might go on: an exponent, a second point.
inline bool ContinuesNumber(uint8_t c) { return c == 'e' || c == 'E' || c == '.'; }

// Digits, signs, '.', letters: what a number token (or a misspelt one) is made of.
inline bool IsNumberByte(uint8_t c) {
  return IsDigit(c) || c == '+' || c == '-' || c == '.' || (unsigned((c | 0x20) - 'a') <= 'z' - 'a');
}

// Number(text) for a text parseDecimal has checked: the nearest double.
inline double CorrectlyRounded(const uint8_t* b, size_t s, size_t e) {
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", locale_t(0));
  char small[64];
  std::string big;
  char* text = small;
  if (e - s >= sizeof small) {
    big.assign(reinterpret_cast<const char*>(b + s), e - s);
    text = &big[0];
  } else {
    std::memcpy(small, b + s, e - s);
    small[e - s] = 0;
  }
  // Overflow gives +-HUGE_VAL (an infinity, refused by the caller as JS does), underflow the
  // correctly rounded subnormal or signed zero, like Number.
  return strtod_l(text, nullptr, c_locale);
}

// parseDecimal: the whole of b[s..e) as `[+-]digits[.digits][e[+-]digits]` (or `.digits`,
// `digits.`), `NaN`, `[+-]Infinity`. false when it is not one.
inline bool ParseDecimal(const uint8_t* b, size_t s, size_t e, double* out) {
  size_t p = s;
  if (p >= e) return false;
  uint8_t c = b[p];
  bool neg = false;
  if (c == '-' || c == '+') {
    neg = c == '-';
    if (++p >= e) return false;
    c = b[p];
  }
  if (c == 'I') {
    if (!MatchAscii(b, p, e, "Infinity")) return false;
    *out = neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    return true;
  }
  if (c == 'N') {
    if (p != s || !MatchAscii(b, p, e, "NaN")) return false;
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  double mant = 0;
  int64_t sig = 0;
  int64_t digits = 0;
  int64_t exp = 0;
  for (; p < e && IsDigit(b[p]); p++) {
    const int d = b[p] - '0';
    if (sig > 0 || d != 0) {
      mant = mant * 10 + d;
      sig++;
    }
    digits++;
  }
  if (p < e && b[p] == '.') {
    for (p++; p < e && IsDigit(b[p]); p++) {
      const int d = b[p] - '0';
      if (sig > 0 || d != 0) {
        mant = mant * 10 + d;
        sig++;
      }
      digits++;
      exp--;
    }
  }
  if (digits == 0) return false;
  if (p < e && (b[p] == 'e' || b[p] == 'E')) {
    if (++p >= e) return false;
    bool eneg = false;
    if (b[p] == '-' || b[p] == '+') {
      eneg = b[p] == '-';
      p++;
    }
    int64_t ev = 0;
    int64_t ed = 0;
    for (; p < e && IsDigit(b[p]); p++) {
      if (ev < 1000000000) ev = ev * 10 + (b[p] - '0');
      ed++;
    }
    if (ed == 0) return false;
    exp += eneg ? -ev : ev;
  }
  if (p != e) return false;
  if (sig <= 15) {
    if (mant == 0) {
      *out = neg ? -0.0 : 0.0;
      return true;
    }
    if (exp == 0) {
      *out = neg ? -mant : mant;
      return true;
    }
    if (exp > 0 && exp <= 22) {
      const double v = mant * kPow10[exp];
      *out = neg ? -v : v;
      return true;
    }
    if (exp < 0 && exp >= -22) {
      const double v = mant / kPow10[-exp];
      *out = neg ? -v : v;
      return true;
    }
  }
  *out = CorrectlyRounded(b, s, e);
  return true;
}

inline bool IsInfinityLiteral(const uint8_t* b, size_t s, size_t e) {
  if (s < e && (b[s] == '-' || b[s] == '+')) s++;
  return MatchAscii(b, s, e, "Infinity");
}

// scanNumberSlow: the token of number bytes at b[s..), typed by ParseDecimal; kFail when it is
// not a number or a finite literal beyond the double range.
inline size_t ScanNumberSlow(const uint8_t* b, size_t s, size_t e, double* out) {
  size_t t = s;
  while (t < e && IsNumberByte(b[t])) t++;
  double v;
  if (!ParseDecimal(b, s, t, &v)) return kFail;
  if (std::isinf(v) && !IsInfinityLiteral(b, s, t)) return kFail;
  *out = v;
  return t;
}

// scanNumber: the number starting at b[s] (up to the first byte that cannot continue it).
inline size_t ScanNumber(const uint8_t* b, size_t s, size_t e, double* out) {
  Plain pl;
  const size_t p = ScanPlainDecimal(b, s, e, &pl);
  if (pl.nd > 0 && pl.nd <= 15 && (p == e || !ContinuesNumber(b[p]))) {
    const double v = pl.frac == 0 ? pl.mant : pl.mant / kPow10[pl.frac];
    *out = pl.neg ? -v : v;
    return p;
  }
  return ScanNumberSlow(b, s, e, out);
}

// scanFloat32: ScanNumber for a value that will be rounded to float32 (same texts and ends; the
// double may differ from the nearest one but has the same float32 rounding). See the JS for why
// the bracket of 2^-45 around the summed digits is safe.
inline size_t ScanFloat32(const uint8_t* b, size_t s, size_t e, double* out) {
  constexpr double kSlack = 1.0 / 35184372088832.0;  // 2^-45
  Plain pl;
  const size_t p = ScanPlainDecimal(b, s, e, &pl);
  if (pl.nd > 0 && pl.nd <= 30 && pl.frac <= 22 && (p == e || !ContinuesNumber(b[p]))) {
    const double v = pl.frac == 0 ? pl.mant : pl.mant / kPow10[pl.frac];
    if (pl.nd <= 15) {
      *out = pl.neg ? -v : v;
      return p;
    }
    const float lo = static_cast<float>(v * (1 - kSlack));
    if (lo == static_cast<float>(v * (1 + kSlack))) {
      *out = pl.neg ? -double(lo) : double(lo);
      return p;
    }
  }
  return ScanNumberSlow(b, s, e, out);
}

// scanEventTime: non-negative decimal digits up to 2^53 - 1.
inline size_t ScanEventTime(const uint8_t* b, size_t s, size_t e, int64_t* out) {
  size_t p = s;
  uint64_t v = 0;
  while (p < e && IsDigit(b[p]) && p - s < 17) {
    v = v * 10 + (b[p] - '0');
    p++;
  }
  // More than 16 digits (the loop stops at 17) or past 2^53 - 1: not an event time.
  if (p == s || p - s > 16 || v > (uint64_t(1) << 53) - 1) return kFail;
  *out = int64_t(v);
  return p;
}

}  // namespace csv
}  // namespace strata

#endif  // STRATA_CSV_NUMBERS_H_
