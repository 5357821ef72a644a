// Exact rationals and the GiNaC checks of answer equivalence
// (equivalence_scalar.h).
#include "rewards/math/equivalence_scalar.h"

#include <ginac/ginac.h>
#include <gmpxx.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <set>

namespace zerorl::rewards::math::scalar {
namespace {

using K = NodeKind;

// ------------------------------------------------------- exact rationals

constexpr long kMaxExponent = 1000;
constexpr size_t kMaxBits = 70000;  // ~20000 decimal digits

bool literal_to_mpq(const std::string& lit, mpq_class& out) {
  std::string digits;
  size_t frac = 0;
  bool seen_dot = false;
  for (char c : lit) {
    if (c == '.') {
      seen_dot = true;
      continue;
    }
    if (c < '0' || c > '9') return false;
    digits += c;
    if (seen_dot) ++frac;
  }
  if (digits.empty() || digits.size() > 5000) return false;
  mpz_class num(digits, 10), den;
  mpz_ui_pow_ui(den.get_mpz_t(), 10, frac);
  out = mpq_class(num, den);
  out.canonicalize();
  return true;
}

}  // namespace

// Pure rational expression -> exact value.  false when the tree has anything
// else (symbols, radicals, structure) or divides by zero.
bool eval_rational(const NodeP& n, mpq_class& out, Budget& b) {
  tick(b);
  switch (n->kind) {
    case K::Num:
      return literal_to_mpq(n->text, out);
    case K::Neg:
      if (!eval_rational(n->kids[0], out, b)) return false;
      out = -out;
      return true;
    case K::Add: {
      mpq_class acc = 0, t;
      for (auto& k : n->kids) {
        if (!eval_rational(k, t, b)) return false;
        acc += t;
      }
      out = acc;
      return true;
    }
    case K::Mul: {
      mpq_class acc = 1, t;
      for (auto& k : n->kids) {
        if (!eval_rational(k, t, b)) return false;
        acc *= t;
        if (mpz_sizeinbase(acc.get_num_mpz_t(), 2) + mpz_sizeinbase(acc.get_den_mpz_t(), 2) >
            kMaxBits)
          throw BudgetExceeded{"number too large"};
      }
      out = acc;
      return true;
    }
    case K::Div: {
      mpq_class a, c;
      if (!eval_rational(n->kids[0], a, b) || !eval_rational(n->kids[1], c, b)) return false;
      if (c == 0) return false;
      out = a / c;
      return true;
    }
    case K::Pow: {
      mpq_class base, e;
      if (!eval_rational(n->kids[1], e, b)) return false;
      if (e.get_den() != 1) return false;
      if (abs(e) > kMaxExponent) throw BudgetExceeded{"exponent too large"};
      if (!eval_rational(n->kids[0], base, b)) return false;
      long ei = e.get_num().get_si();
      size_t bits =
          mpz_sizeinbase(base.get_num_mpz_t(), 2) + mpz_sizeinbase(base.get_den_mpz_t(), 2);
      if (bits * (size_t)std::labs(ei) > kMaxBits) throw BudgetExceeded{"power too large"};
      if (base == 0 && ei < 0) return false;
      mpz_class pn, pd;
      mpz_pow_ui(pn.get_mpz_t(), base.get_num_mpz_t(), (unsigned long)std::labs(ei));
      mpz_pow_ui(pd.get_mpz_t(), base.get_den_mpz_t(), (unsigned long)std::labs(ei));
      out = ei >= 0 ? mpq_class(pn, pd) : mpq_class(pd, pn);
      out.canonicalize();
      return true;
    }
    case K::Func: {
      if (n->text != "factorial") return false;
      mpq_class a;
      if (!eval_rational(n->kids[0], a, b) || a.get_den() != 1 || a < 0) return false;
      if (a > kMaxExponent) throw BudgetExceeded{"factorial too large"};
      mpz_class f;
      mpz_fac_ui(f.get_mpz_t(), a.get_num().get_ui());
      out = f;
      return true;
    }
    default:
      return false;
  }
}

namespace {

mpz_class round_places(const mpq_class& x, int places) {
  mpz_class scale;
  mpz_ui_pow_ui(scale.get_mpz_t(), 10, (unsigned long)std::max(0, places));
  mpq_class y = abs(x) * scale + mpq_class(1, 2);
  mpz_class r;
  mpz_fdiv_q(r.get_mpz_t(), y.get_num_mpz_t(), y.get_den_mpz_t());
  return x < 0 ? mpz_class(-r) : r;
}

// ------------------------------------------------------------- GiNaC

std::mutex& ginac_mutex() {
  static std::mutex mu;
  return mu;
}

struct Unsupported {};

struct GinacCtx {
  std::map<std::string, GiNaC::symbol> syms;
  Budget& b;
  GiNaC::ex sym(const std::string& name) {
    if (name == "pi") return GiNaC::Pi;
    if (name == "e") return GiNaC::exp(GiNaC::ex(1));
    if (name == "i") return GiNaC::I;
    auto it = syms.find(name);
    if (it == syms.end()) it = syms.emplace(name, GiNaC::symbol(name)).first;
    return it->second;
  }
};

constexpr long kMaxSymbolicExponent = 64;  // (x+1)^64 expands in microseconds; ^1000 in seconds

void check_power(const GiNaC::ex& base, const GiNaC::ex& e) {
  if (!GiNaC::is_a<GiNaC::numeric>(e)) return;
  const auto& en = GiNaC::ex_to<GiNaC::numeric>(e);
  if (!GiNaC::is_a<GiNaC::numeric>(base) && en.is_rational() &&
      GiNaC::abs(en.numer()) > kMaxSymbolicExponent)
    throw BudgetExceeded{"symbolic exponent too large"};
  if (!en.is_real()) throw Unsupported{};
  GiNaC::numeric mag = GiNaC::abs(en.is_rational() ? en.numer() : en);
  if (mag > kMaxExponent) throw BudgetExceeded{"exponent too large"};
  if (en.is_rational() && GiNaC::abs(en.denom()) > kMaxExponent)
    throw BudgetExceeded{"root too large"};
  if (GiNaC::is_a<GiNaC::numeric>(base)) {
    const auto& bn = GiNaC::ex_to<GiNaC::numeric>(base);
    if (bn.is_rational()) {
      double digits = (double)(GiNaC::abs(bn.numer()) + GiNaC::abs(bn.denom())).int_length();
      if (digits * GiNaC::abs(en).to_double() > kMaxBits) throw BudgetExceeded{"power too large"};
    }
  }
}

// One case per node kind (~140 lines), the whole LaTeX-tree -> GiNaC mapping
// in one place so a reviewer can check each kind's meaning against the parser.
GiNaC::ex to_ex(const NodeP& n, GinacCtx& c) {
  tick(c.b);
  using namespace GiNaC;
  switch (n->kind) {
    case K::Num: {
      mpq_class q;
      if (!literal_to_mpq(n->text, q)) throw Unsupported{};
      std::string num = q.get_num().get_str(), den = q.get_den().get_str();
      return numeric(cln::cl_I(num.c_str())) / numeric(cln::cl_I(den.c_str()));
    }
    case K::Sym:
      return c.sym(n->text);
    // GiNaC throws (and leaks the node it was building) on matrix + scalar,
    // matrix sums of different shapes, products of incompatible shapes and
    // functions of matrices: those are refused here instead.
    case K::Add: {
      std::vector<ex> terms;
      for (auto& k : n->kids) terms.push_back(to_ex(k, c).evalm());
      bool any_m = false, all_m = true;
      for (auto& t : terms) {
        bool m = is_a<matrix>(t);
        any_m = any_m || m;
        all_m = all_m && m;
      }
      if (any_m && !all_m) throw Unsupported{};
      if (all_m) {
        matrix acc = ex_to<matrix>(terms[0]);
        for (size_t i = 1; i < terms.size(); ++i) {
          const matrix& m = ex_to<matrix>(terms[i]);
          if (m.rows() != acc.rows() || m.cols() != acc.cols()) throw Unsupported{};
          acc = acc.add(m);
        }
        return acc;
      }
      ex s = terms[0];
      for (size_t i = 1; i < terms.size(); ++i) s += terms[i];
      return s;
    }
    case K::Mul: {
      std::vector<ex> f;
      for (auto& k : n->kids) f.push_back(to_ex(k, c).evalm());
      ex scalar = 1;
      bool have_m = false;
      matrix acc(1, 1);
      for (auto& x : f) {
        if (!is_a<matrix>(x)) {
          scalar *= x;
          continue;
        }
        const matrix& m = ex_to<matrix>(x);
        if (!have_m) {
          acc = m;
          have_m = true;
        } else {
          if (acc.cols() != m.rows()) throw Unsupported{};
          acc = acc.mul(m);
        }
      }
      if (!have_m) return scalar;
      return acc.mul_scalar(scalar);
    }
    case K::Div: {
      ex d = to_ex(n->kids[1], c);
      if (d.is_zero() || is_a<matrix>(d.evalm())) throw Unsupported{};
      ex num = to_ex(n->kids[0], c).evalm();
      if (is_a<matrix>(num)) return ex_to<matrix>(num).mul_scalar(1 / d);
      return num / d;
    }
    case K::Neg: {
      ex v = to_ex(n->kids[0], c).evalm();
      if (is_a<matrix>(v)) return ex_to<matrix>(v).mul_scalar(-1);
      return -v;
    }
    case K::Pow: {
      ex base = to_ex(n->kids[0], c), e = to_ex(n->kids[1], c);
      if (is_a<matrix>(base.evalm()) || is_a<matrix>(e.evalm())) throw Unsupported{};
      check_power(base, e);
      // GiNaC throws from inside pow() for 0^0 and 0^-n and leaks the node it
      // was building (found by the fuzzer): refuse those before it sees them.
      if (base.is_zero() && !(is_a<numeric>(e) && ex_to<numeric>(e).is_positive()))
        throw Unsupported{};
      return pow(base, e);
    }
    case K::Func: {
      const std::string& f = n->text;
      std::vector<ex> a;
      for (auto& k : n->kids) {
        a.push_back(to_ex(k, c));
        if (is_a<matrix>(a.back().evalm())) throw Unsupported{};
      }
      if (a.empty()) throw Unsupported{};
      // Poles GiNaC would throw on (and leak): log(0), 1/sin(0), 1/cos(pi/2), ...
      if ((f == "ln" || f == "log" || f == "log10" || f == "logb") && a[0].is_zero())
        throw Unsupported{};
      if (f == "sin") return sin(a[0]);
      if (f == "cos") return cos(a[0]);
      if (f == "tan" || f == "sec" || f == "csc" || f == "cot") {
        ex cs = cos(a[0]), sn = sin(a[0]);
        if (((f == "tan" || f == "sec") && cs.is_zero()) ||
            ((f == "csc" || f == "cot") && sn.is_zero()))
          throw Unsupported{};
        if (f == "tan") return sn / cs;
        if (f == "sec") return 1 / cs;
        if (f == "csc") return 1 / sn;
        return cs / sn;
      }
      if (f == "arcsin") return asin(a[0]);
      if (f == "arccos") return acos(a[0]);
      if (f == "arctan") return atan(a[0]);
      if (f == "sinh") return sinh(a[0]);
      if (f == "cosh") return cosh(a[0]);
      if (f == "tanh") return tanh(a[0]);
      if (f == "ln" || f == "log") return log(a[0]);
      if (f == "log10") return log(a[0]) / log(ex(10));
      if (f == "logb" && a.size() == 2) return log(a[0]) / log(a[1]);
      if (f == "exp") return exp(a[0]);
      if (f == "sqrt") return sqrt(a[0]);
      if (f == "abs") return abs(a[0]);
      if (f == "factorial" || f == "binomial") {
        for (auto& x : a)
          if (is_a<numeric>(x) && abs(ex_to<numeric>(x)) > kMaxExponent)
            throw BudgetExceeded{"factorial too large"};
        return f == "factorial" ? factorial(a[0])
                                : (a.size() == 2 ? binomial(a[0], a[1]) : throw Unsupported{});
      }
      throw Unsupported{};
    }
    case K::Matrix: {
      matrix m((unsigned)n->rows, (unsigned)n->cols);
      for (int r = 0; r < n->rows; ++r)
        for (int col = 0; col < n->cols; ++col) m(r, col) = to_ex(n->kids[r * n->cols + col], c);
      return m;
    }
    default:
      throw Unsupported{};
  }
}

bool contains_matrix(const NodeP& n) {
  if (n->kind == K::Matrix) return true;
  for (auto& k : n->kids)
    if (contains_matrix(k)) return true;
  return false;
}

// Numeric value of a closed expression at 30 digits; false if not numeric.
bool to_complex(const GiNaC::ex& e, std::complex<double>& out, long double* re_hi = nullptr) {
  GiNaC::ex v = GiNaC::evalf(e);
  if (!GiNaC::is_a<GiNaC::numeric>(v)) return false;
  const auto& num = GiNaC::ex_to<GiNaC::numeric>(v);
  out = {GiNaC::real(num).to_double(), GiNaC::imag(num).to_double()};
  if (re_hi) *re_hi = (long double)GiNaC::real(num).to_double();
  return std::isfinite(out.real()) && std::isfinite(out.imag());
}

// Whether e can be evaluated at the point m (symbol -> float) without a huge
// intermediate: e is evaluated first in complex doubles, and any intermediate
// that is not finite or exceeds 1e300 in magnitude refuses the point.  GiNaC's
// floats have an unbounded exponent, so a tower such as x^(x^(x^50)) at x ~ 1.6
// reaches exp(z) with z ~ 10^(10^9), whose integer part cln builds in full
// (gigabytes, seconds, past every deadline).  Values from here only guard;
// the comparison still uses GiNaC's 30-digit evaluation.
bool bounded_at(const GiNaC::ex& e, const GiNaC::exmap& m, std::complex<double>& out) {
  using namespace GiNaC;
  constexpr double kHuge = 1e300;
  auto ok = [](std::complex<double> v) {
    return std::isfinite(v.real()) && std::isfinite(v.imag()) && std::abs(v) <= kHuge;
  };
  if (is_a<numeric>(e) || is_a<constant>(e)) {
    ex v = is_a<numeric>(e) ? e : evalf(e);
    if (!is_a<numeric>(v)) return false;
    const auto& n = ex_to<numeric>(v);
    out = {real(n).to_double(), imag(n).to_double()};
    return ok(out);
  }
  if (is_a<symbol>(e)) {
    auto it = m.find(e);
    return it != m.end() && is_a<numeric>(it->second) && bounded_at(it->second, m, out);
  }
  std::vector<std::complex<double>> args(e.nops());
  for (size_t i = 0; i < e.nops(); ++i)
    if (!bounded_at(e.op(i), m, args[i])) return false;
  if (is_a<add>(e)) {
    out = 0;
    for (auto& a : args) out += a;
  } else if (is_a<mul>(e)) {
    out = 1;
    for (auto& a : args) out *= a;
  } else if (is_a<power>(e)) {
    if (args[0] == 0.0) {  // 0^y: GiNaC's own checks decide
      out = 0;
      return true;
    }
    out = std::exp(args[1] * std::log(args[0]));
  } else if (is_a<function>(e)) {
    // A function of bounded arguments: evaluated by GiNaC on those doubles,
    // kept below 1e15 so that argument reduction stays cheap.
    exvector v;
    for (auto& a : args) {
      if (std::abs(a) > 1e15) return false;
      v.push_back(numeric(a.real()) + numeric(a.imag()) * I);
    }
    ex f = evalf(function(ex_to<function>(e).get_serial(), v));
    if (!is_a<numeric>(f)) return false;
    const auto& n = ex_to<numeric>(f);
    out = {real(n).to_double(), imag(n).to_double()};
  } else {
    return false;  // a kind the numeric probe has no business evaluating
  }
  return ok(out);
}

// GiNaC's 30-digit value of e at m, only when bounded_at(e, m) allows it.
bool value_at(const GiNaC::ex& e, const GiNaC::exmap& m, std::complex<double>& out) {
  std::complex<double> guard;
  if (!bounded_at(e, m, guard)) return false;
  return to_complex(m.empty() ? e : e.subs(m), out);
}

bool approx_equal(std::complex<double> a, std::complex<double> b, double rel) {
  double scale = std::max({1.0, std::abs(a), std::abs(b)});
  return std::abs(a - b) <= rel * scale;
}

bool rounded_equal(std::complex<double> a, std::complex<double> b, int places) {
  if (std::abs(a.imag()) > 1e-12 || std::abs(b.imag()) > 1e-12) return approx_equal(a, b, 1e-12);
  double s = std::pow(10.0, places);
  return std::llround(a.real() * s) == std::llround(b.real() * s) ||
         std::abs(a.real() - b.real()) < 1e-12 * std::max(1.0, std::abs(a.real()));
}

// Number of nodes of e, counting stops at `cap`.
size_t ex_size(const GiNaC::ex& e, size_t cap) {
  size_t n = 1;
  for (size_t i = 0; i < e.nops() && n <= cap; ++i) n += ex_size(e.op(i), cap - n);
  return n;
}

// What expand() would build from an expression: an upper bound on the terms
// of the result, on the bits of its largest coefficient, and on the largest
// terms x bits of any part expanded on the way.  expand() and normal()
// cannot be interrupted, and a small tree can ask for minutes of either: a
// product of powers of sums ((x+1)^64 (y+1)^64 (z+1)^64 has 65^3 terms, found
// by the CI fuzzer as a 10 s timeout), a power of a sum with a large
// constant ((x + N)^64 with N of 54k bits: coefficients of 3.4M bits, 10 s)
// or a power whose exponent expands to large coefficients.
struct ExpandSize {
  double terms = 1, bits = 1, work = 0;
};

ExpandSize expand_size(const GiNaC::ex& e) {
  using namespace GiNaC;
  ExpandSize s;
  if (is_a<numeric>(e)) {
    const numeric& n = ex_to<numeric>(e);
    s.bits = n.is_rational() ? (double)(abs(n.numer()).int_length() + n.denom().int_length()) : 64;
  } else if (is_a<add>(e) || is_a<mul>(e)) {
    bool sum = is_a<add>(e);
    s.terms = sum ? 0 : 1;
    s.bits = 0;
    for (size_t i = 0; i < e.nops(); ++i) {
      ExpandSize k = expand_size(e.op(i));
      s.work = std::max(s.work, k.work);
      if (sum) {
        s.terms += k.terms;
        s.bits = std::max(s.bits, k.bits);
      } else {
        s.terms *= k.terms;
        s.bits += k.bits + std::log2(k.terms);
      }
    }
    if (sum) s.bits += std::log2((double)e.nops());
  } else if (is_a<power>(e)) {
    ExpandSize b = expand_size(e.op(0)), x = expand_size(e.op(1));
    s.work = std::max(b.work, x.work);
    s.bits = b.bits;
    const ex& ee = e.op(1);
    if (is_a<numeric>(ee) && ex_to<numeric>(ee).is_integer()) {
      // (t terms)^n has C(n + t - 1, t - 1) terms (negative n: the
      // denominator's expansion, counted the same).
      double n = std::fabs(ex_to<numeric>(ee).to_double()), t = b.terms;
      s.terms = t <= 1 ? 1 : std::exp(std::lgamma(n + t) - std::lgamma(n + 1) - std::lgamma(t));
      s.bits = n * (b.bits + std::log2(t));
    } else {
      // Any other exponent: expand() splits a^(u+v) into a^u a^v and a
      // numeric base meets the exponent's integer coefficients, a^(c m)
      // holding a^c, so the bits can grow as the base's times 2^(the
      // exponent's coefficient bits).  (x+1)^{64^{64(y+1)^64(z+1)^64}}, a
      // fuzzer find, ran out of memory in expand() after 36 s.
      s.bits = b.bits * std::exp2(std::min(x.bits, 1000.0));
    }
  } else {
    for (size_t i = 0; i < e.nops(); ++i) {
      ExpandSize k = expand_size(e.op(i));
      s.work = std::max(s.work, k.work);
      s.bits = std::max(s.bits, k.bits);
    }
  }
  s.work = std::max(s.work, s.terms * std::max(s.bits, 64.0));
  return s;
}

// Whether expand()/normal() of e stays within a few milliseconds.  Calibrated
// on the fuzzer's finds: (x+1)^64 (y+1)^64 is ~5e5, (x + 3^999)^64 ~7e6
// (0.2 s with the whole grade), the 10 s cases above 1e7 by orders.
bool cheap_to_expand(const GiNaC::ex& e) {
  constexpr double kMaxExpandWork = 4e6;
  return expand_size(e).work <= kMaxExpandWork;
}

void collect_symbols(const GiNaC::ex& e, std::set<std::string>& out) {
  if (GiNaC::is_a<GiNaC::symbol>(e)) {
    out.insert(GiNaC::ex_to<GiNaC::symbol>(e).get_name());
    return;
  }
  for (size_t i = 0; i < e.nops(); ++i) collect_symbols(e.op(i), out);
}

// Whether normal() of e is safe to run, given that it is cheap to expand:
// at most three variables.  normal() cancels common factors with
// multivariate GCDs that recurse once per variable, and a fuzzed relation in
// a dozen single-letter variables kept it busy past every deadline (found by
// a random-seed fuzz, 13 nested pgcd frames).  Without it the test points
// decide, as for any expression too big for the symbolic check.
bool few_enough_symbols_to_normalize(const GiNaC::ex& e) {
  constexpr size_t kMaxNormalSymbols = 3;
  std::set<std::string> syms;
  collect_symbols(e, syms);
  return syms.size() <= kMaxNormalSymbols;
}

Comparison ginac_scalar(const GiNaC::ex& a, const GiNaC::ex& b, bool decimal,
                        const CompareOptions& o, GinacCtx& c) {
  using namespace GiNaC;
  ex d = a - b;
  // expand() and normal() cannot be interrupted: only small trees get them;
  // larger ones go straight to numeric evaluation.
  size_t size = ex_size(d, 400);
  bool cheap = size <= 400 && cheap_to_expand(d);
  try {
    if (cheap && d.expand().is_zero()) return {true, "symbolic"};
    if (cheap && size <= 120 && few_enough_symbols_to_normalize(d) && normal(d).is_zero())
      return {true, "symbolic"};
  } catch (const std::exception&) {
  }
  std::set<std::string> sa, sb;
  collect_symbols(a, sa);
  collect_symbols(b, sb);
  if (sa != sb && o.strict) return {false, "different variables"};
  std::set<std::string> all = sa;
  all.insert(sb.begin(), sb.end());
  if (all.empty()) {
    std::complex<double> va, vb;
    if (!value_at(a, {}, va) || !value_at(b, {}, vb)) return {false, "not numeric"};
    if (decimal)
      return rounded_equal(va, vb, o.precision)
                 ? Comparison{true, "rounded to " + std::to_string(o.precision) + " places"}
                 : Comparison{false, "different values"};
    return approx_equal(va, vb, 1e-12) ? Comparison{true, "numeric"}
                                       : Comparison{false, "different values"};
  }
  // Free variables: evaluate at fixed, irregular points.
  int good = 0;
  for (int k = 0; k < 4; ++k) {
    exmap m;
    int j = 0;
    for (auto& name : all) {
      // Floating-point points: exact rationals would make GiNaC compute
      // rational powers exactly (unbounded bignum work).
      m[c.sym(name)] = numeric(37 + 19 * j + 41 * k, 23 + 7 * k + 3 * j).evalf();
      ++j;
    }
    std::complex<double> va, vb;
    try {
      if (!value_at(a, m, va) || !value_at(b, m, vb)) continue;
    } catch (const std::exception&) {
      continue;
    }
    if (!approx_equal(va, vb, 1e-9)) return {false, "different values at a test point"};
    ++good;
  }
  if (good >= 2) return {true, "numeric at test points"};
  return {false, "could not evaluate"};
}

// Runs f with the GiNaC lock held, waiting until the deadline at most.
template <typename F>
Comparison with_ginac(Budget& b, F f) {
  // Waits until the deadline at most.  try_lock() with a short back-off rather
  // than timed_mutex::try_lock_until: the latter's pthread_mutex_clocklock is
  // invisible to ThreadSanitizer, which then reports every GiNaC access.
  std::unique_lock<std::mutex> lock(ginac_mutex(), std::defer_lock);
  for (int backoff_us = 5; !lock.try_lock(); backoff_us = std::min(backoff_us * 2, 200)) {
    if (b.expired()) throw BudgetExceeded{"deadline (waiting for the symbolic engine)"};
    std::this_thread::sleep_for(std::chrono::microseconds(backoff_us));
  }
  static bool digits_set = [] {
    GiNaC::Digits = 30;
    return true;
  }();
  (void)digits_set;
  try {
    return f();
  } catch (const BudgetExceeded&) {
    throw;
  } catch (const Unsupported&) {
    return {false, "unsupported"};
  } catch (const std::exception& e) {
    return {false, std::string("symbolic engine: ") + e.what()};
  }
}

}  // namespace

Comparison scalar_equal(const NodeP& g, const NodeP& p, const CompareOptions& o, Budget& b) {
  mpq_class a, c;
  bool decimal = g->has_decimal || p->has_decimal;
  if (eval_rational(g, a, b) && eval_rational(p, c, b)) {
    if (a == c) return {true, "exact"};
    if (decimal && round_places(a, o.precision) == round_places(c, o.precision))
      return {true, "rounded to " + std::to_string(o.precision) + " places"};
    return {false, "different values"};
  }
  return with_ginac(b, [&]() -> Comparison {
    GinacCtx ctx{{}, b};
    GiNaC::ex ea = to_ex(g, ctx).evalm(), eb = to_ex(p, ctx).evalm();
    {
      bool ma = GiNaC::is_a<GiNaC::matrix>(ea), mb = GiNaC::is_a<GiNaC::matrix>(eb);
      if (ma != mb) return {false, "matrix vs non-matrix"};
      if (ma) {
        const auto& A = GiNaC::ex_to<GiNaC::matrix>(ea);
        const auto& B = GiNaC::ex_to<GiNaC::matrix>(eb);
        if (A.rows() != B.rows() || A.cols() != B.cols()) return {false, "matrix shapes differ"};
        for (unsigned r = 0; r < A.rows(); ++r)
          for (unsigned col = 0; col < A.cols(); ++col) {
            auto cmp = ginac_scalar(A(r, col), B(r, col), decimal, o, ctx);
            if (!cmp.equal) return {false, "matrix entries differ"};
          }
        return {true, "matrix entries equal"};
      }
    }
    return ginac_scalar(ea, eb, decimal, o, ctx);
  });
}

// (l1 - r1) = k (l2 - r2) for a constant k (> 0 when `positive`).
Comparison proportional(const NodeP& d1, const NodeP& d2, bool positive, const CompareOptions& o,
                        Budget& b) {
  return with_ginac(b, [&]() -> Comparison {
    GinacCtx ctx{{}, b};
    GiNaC::ex e1 = to_ex(d1, ctx), e2 = to_ex(d2, ctx);
    if (e2.is_zero() || e1.is_zero()) return {e1.is_zero() && e2.is_zero(), "trivial relation"};
    GiNaC::ex q = e1 / e2;
    GiNaC::ex r = ex_size(q, 120) <= 120 && cheap_to_expand(q) && few_enough_symbols_to_normalize(q)
                      ? GiNaC::normal(q)
                      : q;
    if (GiNaC::is_a<GiNaC::numeric>(r)) {
      const auto& k = GiNaC::ex_to<GiNaC::numeric>(r);
      if (!k.is_real() || k.is_zero()) return {false, "not proportional"};
      if (positive && k.is_negative()) return {false, "relation reversed"};
      return {true, "equivalent relation"};
    }
    // normal() may not cancel radicals; check the ratio numerically.
    std::set<std::string> syms;
    collect_symbols(r, syms);
    std::complex<double> first;
    int good = 0;
    for (int k = 0; k < 4; ++k) {
      GiNaC::exmap m;
      int j = 0;
      for (auto& name : syms)
        m[ctx.sym(name)] = GiNaC::numeric(37 + 19 * j++ + 41 * k, 23 + 7 * k).evalf();
      std::complex<double> v;
      try {
        if (!value_at(r, m, v)) continue;
      } catch (const std::exception&) {
        continue;
      }
      if (good == 0)
        first = v;
      else if (!approx_equal(first, v, 1e-9))
        return {false, "not proportional"};
      ++good;
    }
    if (good < 2 || std::abs(first) < 1e-12) return {false, "not proportional"};
    if (positive && first.real() < 0) return {false, "relation reversed"};
    return {true, "equivalent relation"};
  });
}

}  // namespace zerorl::rewards::math::scalar
