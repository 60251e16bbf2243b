//! Writes laid-out pages with krilla.

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, Stroke};
use krilla::surface::Surface;
use krilla::{Document, SerializeSettings};

use crate::PdfError;
use crate::layout::{Color, Op, PAGE_H, PAGE_W};
use crate::text::Fonts;

/// Writes `pages` as a PDF whose metadata names `title` and `creator`.
pub(crate) fn draw(
    title: &str,
    creator: &str,
    fonts: &Fonts,
    pages: &[Vec<Op>],
) -> Result<Vec<u8>, PdfError> {
    let settings = SerializeSettings {
        // No tag tree is built, so don't mark content for one.
        enable_tagging: false,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    let size =
        PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| PdfError::Write("invalid page size".into()))?;
    for ops in pages {
        let mut page = document.start_page_with(size.clone());
        let mut surface = page.surface();
        for op in ops {
            draw_op(&mut surface, fonts, op);
        }
        surface.finish();
        page.finish();
    }
    document.set_metadata(
        Metadata::new()
            .title(title.to_owned())
            .creator(creator.to_owned())
            .language("en".into()),
    );
    document.finish().map_err(|e| PdfError::Write(e.to_string()))
}

fn paint(c: Color) -> rgb::Color {
    rgb::Color::new(c.0, c.1, c.2)
}

fn fill(c: Color) -> Fill {
    Fill {
        paint: paint(c).into(),
        opacity: NormalizedF32::ONE,
        rule: FillRule::NonZero,
    }
}

fn draw_op(surface: &mut Surface<'_>, fonts: &Fonts, op: &Op) {
    match op {
        Op::Text {
            x,
            y,
            face,
            size,
            color,
            text,
        } => {
            let font = fonts.face(*face);
            surface.set_stroke(None);
            surface.set_fill(Some(fill(*color)));
            surface.draw_glyphs(
                Point::from_xy(*x, *y),
                &font.glyphs(text),
                font.pdf.clone(),
                text,
                *size,
                false,
            );
        }
        Op::Rect {
            x,
            y,
            w,
            h,
            radius,
            color,
        } => {
            let mut pb = PathBuilder::new();
            if *radius > 0.0 {
                rounded_rect(&mut pb, *x, *y, *w, *h, radius.min(w / 2.0).min(h / 2.0));
            } else if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                pb.push_rect(rect);
            }
            if let Some(path) = pb.finish() {
                surface.set_stroke(None);
                surface.set_fill(Some(fill(*color)));
                surface.draw_path(&path);
            }
        }
        Op::Line {
            x1,
            y1,
            x2,
            y2,
            width,
            color,
        } => {
            let mut pb = PathBuilder::new();
            pb.move_to(*x1, *y1);
            pb.line_to(*x2, *y2);
            if let Some(path) = pb.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: paint(*color).into(),
                    width: *width,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
                surface.set_stroke(None);
            }
        }
    }
}

fn rounded_rect(pb: &mut PathBuilder, x: f32, y: f32, w: f32, h: f32, r: f32) {
    // Cubic approximation of a quarter circle.
    let k = r * 0.552_284_8;
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.cubic_to(x + w - r + k, y, x + w, y + r - k, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.cubic_to(x + w, y + h - r + k, x + w - r + k, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.cubic_to(x + r - k, y + h, x, y + h - r + k, x, y + h - r);
    pb.line_to(x, y + r);
    pb.cubic_to(x, y + r - k, x + r - k, y, x + r, y);
    pb.close();
}
