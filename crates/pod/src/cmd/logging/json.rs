//! JSON log lines written straight into the line: byte for byte what
//! tracing-subscriber's `json().flatten_event(true).with_current_span(false)`
//! writes, without its serde map, its `String` per timestamp and its
//! `format!` per field. The server logs a line per admission, so what the
//! stock formatter costs there counts (docs/dev/performance.md).
//! Events inside a span, rare here, go to the stock formatter, which also
//! lists the spans.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `--log-format json`, with `JsonFields` as the
/// field formatter of spans.
pub struct FlatJson {
    stock: Format<Json>,
}

impl Default for FlatJson {
    fn default() -> Self {
        Self { stock: tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false) }
    }
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current()).is_some() {
            return self.stock.format_event(ctx, writer, event);
        }
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields { out: &mut writer, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`, as serde_json writes the value.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.out.write_char(',').and_then(|()| string(self.out, field.name()));
            self.result = self.result.and_then(|()| self.out.write_char(':')).and_then(|()| value(self.out));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| string(out, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own rendering: `1.0`, `1e21`, `null` for NaN.
        self.entry(field, |out| out.write_str(&serde_json::to_string(&value).map_err(|_| fmt::Error)?));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    // i128 and u128: strings, as the stock formatter writes them (record_debug).

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.entry(field, |out| out.write_str(&serde_json::to_string(value).map_err(|_| fmt::Error)?));
    }
}

/// `text` as a JSON string.
fn string(out: &mut Writer<'_>, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what it is given as serde_json escapes string contents: `"`,
/// `\` and control characters; everything else as it is.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut start = 0;
        for (index, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[start..index])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = index + 1;
        }
        self.0.write_str(&text[start..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failure;
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk \"full\"\n")
        }
    }
    impl std::error::Error for Failure {}

    fn events() {
        let error: &(dyn std::error::Error + 'static) = &Failure;
        tracing::info!(
            uid = "705ab4f5",
            object = %"shop/web",
            dry_run = false,
            count = -3i64,
            big = u64::MAX,
            wide = i128::MIN,
            duration_ms = 0.31117500000000003,
            whole = 1.0,
            huge = 1e21,
            nan = f64::NAN,
            odd = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é ☃",
            debugged = ?vec!["a\"b"],
            error,
            "admission of {}", "web"
        );
        tracing::warn!(target: "other::target", reason = "x", "rejected \"now\"");
        let span = tracing::info_span!("request", id = 7, path = "/mutate");
        span.in_scope(|| tracing::error!(status = 400u16, "inside a span"));
    }

    fn lines(format: impl FormatEvent<tracing_subscriber::Registry, JsonFields> + Send + Sync + 'static) -> String {
        let captured = Captured::default();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(format)
            .with_writer(captured.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), events);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        // Timestamps differ by when each ran.
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                let at = value["timestamp"].as_str().unwrap().to_owned();
                assert!(at.ends_with('Z') && at.len() == 27, "{at}");
                line.replacen(&at, "T", 1)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn lines_are_the_stock_json_lines() {
        let stock = lines(tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false));
        let flat = lines(FlatJson::default());
        assert_eq!(flat.lines().count(), 3);
        assert_eq!(flat, stock);
    }
}
