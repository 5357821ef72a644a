#include "trainer/plot.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include "core/error.h"
#include "trainer/run_dir.h"

namespace fs = std::filesystem;

namespace zerorl {

namespace {

// ------------------------------------------------------------------ font --
// 5x7 glyphs for ASCII 32..126; each row's low 5 bits, bit 4 = leftmost.
// Drawn by hand for zerorl; 6 px advance (one column of spacing).
constexpr int kGlyphW = 5, kGlyphH = 7, kAdvance = 6;
const uint8_t kFont[95][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  //
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04},  // !
    {0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00},  // "
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a},  // #
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04},  // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},  // %
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d},  // &
    {0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00},  // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},  // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},  // )
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00},  // *
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00},  // +
    {0x00, 0x00, 0x00, 0x00, 0x06, 0x02, 0x04},  // ,
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c},  // .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},  // /
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e},  // 0
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e},  // 1
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f},  // 2
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e},  // 3
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02},  // 4
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e},  // 5
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e},  // 6
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},  // 7
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e},  // 8
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c},  // 9
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00},  // :
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08},  // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},  // <
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00},  // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},  // >
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},  // ?
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e},  // @
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11},  // A
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e},  // B
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e},  // C
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c},  // D
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f},  // E
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10},  // F
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f},  // G
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11},  // H
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e},  // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c},  // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},  // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f},  // L
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11},  // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},  // N
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e},  // O
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10},  // P
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d},  // Q
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11},  // R
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e},  // S
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},  // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e},  // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04},  // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a},  // W
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11},  // X
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04},  // Y
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f},  // Z
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e},  // [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00},  // backslash
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e},  // ]
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00},  // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f},  // _
    {0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00},  // `
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e},  // b
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e},  // c
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f},  // d
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e},  // e
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08},  // f
    {0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},  // h
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12},  // k
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e},  // l
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},  // n
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e},  // o
    {0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10},  // p
    {0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},  // r
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e},  // s
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a},  // w
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11},  // x
    {0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e},  // y
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f},  // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02},  // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},  // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08},  // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00},  // ~
};

// Lower-case letters with descenders: 9 rows, the last two below the baseline.
struct Descender {
  char ch;
  uint8_t rows[9];
};
const Descender kDescenders[] = {
    {'g', {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}},
    {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}},
    {'p', {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10}},
    {'q', {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}},
};

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrid{225, 225, 225}, kText{40, 40, 40};
// Matplotlib's tab10, so the charts look familiar.
constexpr Rgb kPalette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                            {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127}};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3, 255) {}
  int width() const { return w_; }
  int height() const { return h_; }
  const uint8_t* data() const { return px_.data(); }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  void fill(int x0, int y0, int x1, int y1, Rgb c) {  // inclusive
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  // Bresenham with a square pen of side `thick`.
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1) {
    int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, lo = -(thick - 1) / 2, hi = thick / 2;
    while (true) {
      fill(x0 + lo, y0 + lo, x0 + hi, y0 + hi, c);
      if (x0 == x1 && y0 == y1) break;
      int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  static int text_width(const std::string& s, int scale) {
    return s.empty() ? 0 : static_cast<int>(s.size()) * kAdvance * scale - scale;
  }
  void text(int x, int y, const std::string& s, int scale, Rgb c) {
    for (char ch : s) {
      int code = static_cast<unsigned char>(ch);
      if (code < 32 || code > 126) code = '?';
      const uint8_t* g = kFont[code - 32];
      int rows = kGlyphH;
      for (const Descender& d : kDescenders)
        if (d.ch == code) g = d.rows, rows = kGlyphH + 2;
      for (int row = 0; row < rows; ++row)
        for (int col = 0; col < kGlyphW; ++col)
          if (g[row] & (1 << (kGlyphW - 1 - col)))
            fill(x + col * scale, y + row * scale, x + (col + 1) * scale - 1,
                 y + (row + 1) * scale - 1, c);
      x += kAdvance * scale;
    }
  }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

// Ticks at 1-2-5 multiples covering [lo, hi].
struct Ticks {
  std::vector<double> at;
  double step = 1;
};
Ticks nice_ticks(double lo, double hi, int target) {
  Ticks t;
  double raw = (hi - lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double m = raw / mag;
  t.step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * mag;
  // Index-based, so a step below the values' resolution (1e10 +- 1e-7)
  // cannot loop forever; absurd ranges get no ticks rather than thousands.
  if (!std::isfinite(t.step) || !(t.step > 0)) return t;
  double k0 = std::ceil(lo / t.step - 1e-9), k1 = std::floor(hi / t.step + 1e-9);
  if (!std::isfinite(k0) || !std::isfinite(k1) || !(k1 - k0 < 50)) return t;
  for (int i = 0; k0 + i <= k1; ++i) {
    double v = (k0 + i) * t.step;
    t.at.push_back(std::fabs(v) < t.step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::string tick_label(double v, double step) {
  char buf[64];
  double a = std::max(std::fabs(v), step);
  if (a >= 1e6 || a < 1e-4)
    std::snprintf(buf, sizeof buf, "%.2g", v);
  else {
    int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

void write_png(const std::string& path, const Canvas& c) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(c.width());
  img.height = static_cast<png_uint_32>(c.height());
  img.format = PNG_FORMAT_RGB;
  std::string tmp = path + ".tmp";
  if (!png_image_write_to_file(&img, tmp.c_str(), 0, c.data(), 0, nullptr)) {
    std::string why = img.message;
    png_image_free(&img);
    std::remove(tmp.c_str());
    ZR_THROW("cannot write PNG '", path, "': ", why);
  }
  ZR_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '", tmp, "' to '", path,
           "'");
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

}  // namespace

std::vector<ChartSpec> default_chart_specs() {
  return {
      {"reward", "reward (mean over completions)", {"reward/mean"}},
      {"accuracy", "accuracy reward", {"reward/accuracy"}},
      {"response_length", "response length (tokens)", {"response/length_mean"}},
      {"kl", "KL(policy || reference)", {"loss/kl"}},
      {"entropy", "policy entropy (nats/token)", {"loss/entropy"}},
      {"clip_fraction", "clipped token fraction", {"loss/clip_frac_low", "loss/clip_frac_high"}},
      {"eval",
       "held-out evaluation",
       {"eval:pass_at_1", "eval:greedy_accuracy", "eval:format_rate"}},
  };
}

ChartSpec parse_chart_spec(const std::string& text) {
  size_t eq = text.find('=');
  ZR_CHECK(eq != std::string::npos, "chart '", text, "': expected NAME=KEY[,KEY...]");
  ChartSpec c;
  c.name = text.substr(0, eq);
  ZR_CHECK(!c.name.empty() && c.name.find('/') == std::string::npos, "chart '", text,
           "': the name must be non-empty and contain no '/'");
  c.title = c.name;
  for (const std::string& k : split(text.substr(eq + 1), ','))
    if (!k.empty()) c.keys.push_back(k);
  ZR_CHECK(!c.keys.empty(), "chart '", text, "': no keys");
  return c;
}

// Draws one chart top to bottom (ranges, frame, ticks, labels, series,
// legend; ~110 lines): each step uses the same pixel mapping.
void write_line_chart_png(const std::string& path, const std::string& title,
                          const std::string& x_label, const std::vector<Series>& series, int width,
                          int height) {
  ZR_CHECK(width >= 200 && height >= 150 && width <= 8000 && height <= 8000, "chart size ", width,
           "x", height, " out of range");
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const Series& s : series) {
    ZR_CHECK(s.x.size() == s.y.size(), "series '", s.label, "': ", s.x.size(), " x values but ",
             s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  }
  bool empty = !(xlo <= xhi);
  if (empty) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (xhi == xlo) xlo -= 1, xhi += 1;
  if (yhi == ylo) {
    double pad = ylo == 0 ? 1 : std::fabs(ylo) * 0.1;
    ylo -= pad, yhi += pad;
  } else {
    // Halves keep the range finite even for values near +-DBL_MAX.
    double pad = (yhi * 0.5 - ylo * 0.5) * 0.1;
    const double kMax = std::numeric_limits<double>::max();
    ylo = std::max(-kMax, ylo - pad), yhi = std::min(kMax, yhi + pad);
  }
  Ticks yt = nice_ticks(ylo, yhi, 6), xt = nice_ticks(xlo, xhi, 8);

  const int kS = 2;  // text scale: 10x14 px glyphs
  Canvas cv(width, height);
  int label_w = 0;
  for (double v : yt.at)
    label_w = std::max(label_w, Canvas::text_width(tick_label(v, yt.step), kS));
  const int left = 16 + label_w + 8, right = width - 24;
  // Legend entries (swatch + label) flow in rows between the title and the
  // plot area, so they never hide a line.
  const int kRowH = 22, kSwatch = 24, kLegendY = 16 + 18 + 10;
  std::vector<std::pair<int, int>> legend_at;  // top-left of each entry
  {
    int x = left, y = kLegendY;
    for (const Series& s : series) {
      int w = kSwatch + 8 + Canvas::text_width(s.label, kS);
      if (x > left && x + w > right) x = left, y += kRowH;
      legend_at.emplace_back(x, y);
      x += w + 24;
    }
  }
  const int legend_rows = series.empty() ? 0 : (legend_at.back().second - kLegendY) / kRowH + 1;
  const int top = kLegendY + legend_rows * kRowH + 8, bottom = height - (14 + 10 + 14 + 16);
  ZR_CHECK(right - left > 20 && bottom - top > 20, "chart ", width, "x", height,
           " too small for its labels");
  // Fractions computed on halves (finite for any finite inputs) and clamped,
  // so a pixel coordinate is always a sane int.
  auto frac = [](double v, double lo, double hi) {
    double f = (v * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5);
    return std::isfinite(f) ? std::clamp(f, -0.01, 1.01) : 0.0;
  };
  auto px = [&](double x) {
    return left + static_cast<int>(std::lround(frac(x, xlo, xhi) * (right - left)));
  };
  auto py = [&](double y) {
    return bottom - static_cast<int>(std::lround(frac(y, ylo, yhi) * (bottom - top)));
  };

  cv.text((width - Canvas::text_width(title, kS)) / 2, 16, title, kS, kText);
  for (double v : yt.at) {
    int y = py(v);
    if (y < top || y > bottom) continue;
    cv.line(left, y, right, y, kGrid);
    std::string l = tick_label(v, yt.step);
    cv.text(left - 8 - Canvas::text_width(l, kS), y - 7, l, kS, kText);
  }
  for (double v : xt.at) {
    int x = px(v);
    if (x < left || x > right) continue;
    cv.line(x, top, x, bottom, kGrid);
    std::string l = tick_label(v, xt.step);
    cv.text(x - Canvas::text_width(l, kS) / 2, bottom + 10, l, kS, kText);
  }
  cv.line(left, top, left, bottom, kBlack);
  cv.line(left, bottom, right, bottom, kBlack);
  cv.text((left + right - Canvas::text_width(x_label, kS)) / 2, bottom + 10 + 14 + 8, x_label, kS,
          kText);
  if (empty) {
    std::string msg = "no data";
    cv.text((left + right - Canvas::text_width(msg, kS)) / 2, (top + bottom) / 2, msg, kS, kText);
  }

  for (size_t si = 0; si < series.size(); ++si) {
    const Series& s = series[si];
    Rgb col = kPalette[si % (sizeof kPalette / sizeof kPalette[0])];
    bool sparse = s.x.size() <= 40;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      int x = px(s.x[i]), y = py(s.y[i]);
      bool prev_ok = i > 0 && std::isfinite(s.x[i - 1]) && std::isfinite(s.y[i - 1]);
      bool next_ok = i + 1 < s.x.size() && std::isfinite(s.x[i + 1]) && std::isfinite(s.y[i + 1]);
      if (prev_ok) cv.line(px(s.x[i - 1]), py(s.y[i - 1]), x, y, col, 2);
      if (sparse || (!prev_ok && !next_ok)) cv.fill(x - 2, y - 2, x + 2, y + 2, col);
    }
  }

  for (size_t si = 0; si < series.size(); ++si) {
    Rgb col = kPalette[si % (sizeof kPalette / sizeof kPalette[0])];
    auto [x, y] = legend_at[si];
    cv.fill(x, y + 6, x + kSwatch - 1, y + 8, col);
    cv.text(x + kSwatch + 8, y, series[si].label, kS, kText);
  }
  write_png(path, cv);
}

std::vector<std::string> plot_run(const std::string& run_dir,
                                  const std::vector<ChartSpec>& charts) {
  std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  std::string eval_path = (fs::path(run_dir) / "eval.jsonl").string();
  ZR_CHECK(fs::exists(metrics_path), "'", run_dir, "' is not a run directory: no metrics.jsonl");
  std::vector<MetricsRow> metrics = read_metrics_jsonl(metrics_path);
  std::vector<MetricsRow> eval;
  if (fs::exists(eval_path)) eval = read_metrics_jsonl(eval_path);

  std::string out_dir = (fs::path(run_dir) / "plots").string();
  std::vector<std::string> written;
  for (const ChartSpec& chart : charts) {
    std::vector<Series> series;
    for (const std::string& key : chart.keys) {
      for (const std::string& alt : split(key, '|')) {
        bool from_eval = alt.rfind("eval:", 0) == 0;
        const std::vector<MetricsRow>& rows = from_eval ? eval : metrics;
        std::string name = from_eval ? alt.substr(5) : alt;
        Series s;
        s.label = name;
        for (const MetricsRow& r : rows) {
          auto it = r.values.find(name);
          if (it == r.values.end()) continue;
          s.x.push_back(static_cast<double>(r.step));
          s.y.push_back(it->second);
        }
        if (!s.x.empty()) {
          series.push_back(std::move(s));
          break;
        }
      }
    }
    if (series.empty()) continue;
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    ZR_CHECK(!ec, "cannot create '", out_dir, "': ", ec.message());
    std::string path = (fs::path(out_dir) / (chart.name + ".png")).string();
    write_line_chart_png(path, chart.title.empty() ? chart.name : chart.title, "step", series);
    written.push_back(path);
  }
  return written;
}

}  // namespace zerorl
