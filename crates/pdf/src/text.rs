//! The embedded fonts, text measurement from their glyph advances, and
//! fitting text into a width (wrapping, truncating, shrinking).
//!
//! Glyphs are placed one per character at the font's own advance widths
//! (no kerning, no shaping), so what [`FontFace::width`] measures is
//! exactly what is drawn: right-aligned columns line up to the point.

use std::ops::Range;

use krilla::text::{GlyphId, KrillaGlyph};
use skrifa::charmap::Charmap;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

use crate::PdfError;

static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// Which of the embedded faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    Regular,
    Bold,
}

/// One font: what krilla embeds, plus the tables needed to measure text.
pub(crate) struct FontFace {
    pub(crate) pdf: krilla::text::Font,
    charmap: Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
    /// Cap height as a fraction of the font size.
    pub(crate) cap_height: f32,
}

impl FontFace {
    fn load(name: &'static str, data: &'static [u8]) -> Result<Self, PdfError> {
        let font = FontRef::new(data).map_err(|_| PdfError::Font(name))?;
        let pdf = krilla::text::Font::new(data.into(), 0).ok_or(PdfError::Font(name))?;
        let m = font.metrics(Size::unscaled(), LocationRef::default());
        let units_per_em = f32::from(m.units_per_em);
        if units_per_em <= 0.0 {
            return Err(PdfError::Font(name));
        }
        Ok(Self {
            pdf,
            charmap: font.charmap(),
            metrics: font.glyph_metrics(Size::unscaled(), LocationRef::default()),
            units_per_em,
            cap_height: m.cap_height.unwrap_or(0.7 * units_per_em) / units_per_em,
        })
    }

    /// The glyph of a character, `.notdef` (0) when the font lacks it.
    fn glyph(&self, c: char) -> skrifa::GlyphId {
        self.charmap.map(c).unwrap_or(skrifa::GlyphId::NOTDEF)
    }

    /// Advance of one character in em units.
    fn advance(&self, c: char) -> f32 {
        self.metrics.advance_width(self.glyph(c)).unwrap_or(0.0) / self.units_per_em
    }

    /// The width of `text` set at `size` points.
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size
    }

    /// The glyphs that draw `text`, each mapped back to its character so the
    /// PDF's ToUnicode map makes the text extractable.
    pub(crate) fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let gid = self.glyph(c);
                let range: Range<usize> = i..i + c.len_utf8();
                KrillaGlyph::new(
                    GlyphId::new(gid.to_u32()),
                    self.advance(c),
                    0.0,
                    0.0,
                    0.0,
                    range,
                    None,
                )
            })
            .collect()
    }
}

/// The regular and bold faces.
pub(crate) struct Fonts {
    regular: FontFace,
    bold: FontFace,
}

impl Fonts {
    pub(crate) fn load() -> Result<Self, PdfError> {
        Ok(Self {
            regular: FontFace::load("DejaVuSans.ttf", REGULAR)?,
            bold: FontFace::load("DejaVuSans-Bold.ttf", BOLD)?,
        })
    }

    pub(crate) fn face(&self, face: Face) -> &FontFace {
        match face {
            Face::Regular => &self.regular,
            Face::Bold => &self.bold,
        }
    }

    pub(crate) fn width(&self, face: Face, text: &str, size: f32) -> f32 {
        self.face(face).width(text, size)
    }

    /// `text` cut to fit `max` points, ending in an ellipsis when cut.
    pub(crate) fn truncate(&self, face: Face, text: &str, size: f32, max: f32) -> String {
        if self.width(face, text, size) <= max {
            return text.to_owned();
        }
        let ellipsis = self.width(face, "…", size);
        let mut out = String::new();
        let mut used = 0.0;
        for c in text.chars() {
            let w = self.face(face).advance(c) * size;
            if used + w + ellipsis > max {
                break;
            }
            used += w;
            out.push(c);
        }
        let mut out = out.trim_end().to_owned();
        out.push('…');
        out
    }

    /// Wraps `text` into lines no wider than `max` points, breaking at
    /// spaces, and inside words only when a word alone is too wide; a line
    /// that ends at a space keeps it (it is invisible and not counted). At most
    /// `max_lines` lines; the last one ends in an ellipsis when text was left
    /// out.
    pub(crate) fn wrap(&self, face: Face, text: &str, size: f32, max: f32, max_lines: usize) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if self.width(face, &candidate, size) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                // Keep the space the line broke at (it draws nothing) so
                // that text extraction doesn't glue the two lines' words.
                line.push(' ');
                lines.push(std::mem::take(&mut line));
            }
            // The word starts a line; split it if it alone is too wide.
            let mut rest = word;
            while self.width(face, rest, size) > max {
                let cut = self.fit_prefix(face, rest, size, max);
                lines.push(rest[..cut].to_owned());
                rest = &rest[cut..];
            }
            line = rest.to_owned();
        }
        if !line.is_empty() {
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
        if lines.len() > max_lines {
            lines.truncate(max_lines.max(1));
            if let Some(last) = lines.last_mut() {
                let with_ellipsis = format!("{}…", last.trim_end());
                *last = self.truncate(face, &with_ellipsis, size, max);
                if !last.ends_with('…') {
                    last.push('…');
                }
            }
        }
        lines
    }

    /// The byte length of the longest prefix of `word` (at least one
    /// character) that fits `max` points.
    fn fit_prefix(&self, face: Face, word: &str, size: f32, max: f32) -> usize {
        let mut used = 0.0;
        let mut end = 0;
        for (i, c) in word.char_indices() {
            let w = self.face(face).advance(c) * size;
            if used + w > max && i > 0 {
                break;
            }
            used += w;
            end = i + c.len_utf8();
        }
        end
    }

    /// The largest size, from `size` down to `min`, at which `text` fits
    /// `max` points (or `min` if it never does).
    pub(crate) fn shrink_to_fit(&self, face: Face, text: &str, size: f32, min: f32, max: f32) -> f32 {
        let natural = self.width(face, text, size);
        if natural <= max || natural <= 0.0 {
            return size;
        }
        (size * max / natural).max(min)
    }
}

/// Replaces control characters (newlines, tabs…) with spaces so that every
/// string draws on one line.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_add_up_from_glyph_advances() {
        let f = Fonts::load().unwrap();
        let one = f.width(Face::Regular, "0", 10.0);
        // DejaVu Sans digits are 1303/2048 em wide.
        assert!((one - 1303.0 / 2048.0 * 10.0).abs() < 1e-4, "{one}");
        assert!((f.width(Face::Regular, "000", 10.0) - 3.0 * one).abs() < 1e-4);
        assert!(f.width(Face::Bold, "Total", 10.0) > f.width(Face::Regular, "Total", 10.0));
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_inside_overlong_words() {
        let f = Fonts::load().unwrap();
        let lines = f.wrap(
            Face::Regular,
            "aaa bbb ccc",
            10.0,
            f.width(Face::Regular, "aaa bbb", 10.0),
            5,
        );
        assert_eq!(lines, ["aaa bbb ", "ccc"]);
        let long = "x".repeat(100);
        let max = f.width(Face::Regular, "xxxxxxxxxx", 10.0);
        let lines = f.wrap(Face::Regular, &long, 10.0, max, 20);
        assert_eq!(lines.len(), 10);
        assert!(
            lines
                .iter()
                .all(|l| f.width(Face::Regular, l, 10.0) <= max + 1e-3)
        );
        let lines = f.wrap(Face::Regular, &long, 10.0, max, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with('…'));
        assert!(f.width(Face::Regular, &lines[2], 10.0) <= max + 1e-3);
    }

    #[test]
    fn truncation_keeps_short_text_and_cuts_long_text_with_an_ellipsis() {
        let f = Fonts::load().unwrap();
        assert_eq!(f.truncate(Face::Regular, "short", 10.0, 100.0), "short");
        let cut = f.truncate(Face::Regular, &"word ".repeat(40), 10.0, 100.0);
        assert!(cut.ends_with('…') && f.width(Face::Regular, &cut, 10.0) <= 100.0);
        assert_eq!(clean("a\nb\tc"), "a b c");
    }
}
