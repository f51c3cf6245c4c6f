//! kubectl-style tables: upper-case headers, columns separated by three spaces, no borders, no
//! trailing spaces, colour only when asked (stdout is a terminal and `NO_COLOR` is unset).

use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, presets};
use sidekiq_guard::errors::printable;

/// A colour for a cell, applied only when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Info,
}

/// Renders `rows` under `header` into a string ending with a newline (empty without rows).
pub(crate) fn render(header: &[&str], rows: Vec<Vec<(String, Tone)>>, color: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row.into_iter().map(|(text, tone)| cell(text, tone, color)));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    let mut out = String::new();
    // Padding leaves spaces after the last column; kubectl's tables have none.
    for line in table.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cell(text: String, tone: Tone, color: bool) -> Cell {
    // Cells quote manifests, the cluster and Redis records (job classes, hostnames, errors).
    let cell = Cell::new(printable(text));
    if !color {
        return cell;
    }
    match tone {
        Tone::Plain => cell,
        Tone::Good => cell.fg(Color::Green),
        Tone::Warn => cell.fg(Color::Yellow),
        Tone::Bad => cell.fg(Color::Red),
        Tone::Info => cell.fg(Color::Blue),
    }
}

/// A plain cell.
pub(crate) fn plain(text: impl Into<String>) -> (String, Tone) {
    (text.into(), Tone::Plain)
}
