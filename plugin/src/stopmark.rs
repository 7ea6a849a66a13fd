//! The stop mark: when Telegraf stops vigil (stdin EOF, SIGTERM), vigil
//! writes its last heartbeat once more with `stopping=1i`. A node that shuts
//! down in order leaves this mark; a node that froze, lost power or was reset
//! does not, which is how `vigil postmortem` tells a reset from a reboot.
//! Telegraf reads stdout until vigil exits and flushes before it stops.

use std::borrow::Cow;
use std::io::Write;

use vigil_collector::{Clock, Root};

use crate::cli::Format;
use crate::metric::{Field, Metric};

/// The fields of the newest `vigil` point, kept to be repeated on stop.
#[derive(Default)]
pub struct StopMark {
    fields: Option<Vec<(Cow<'static, str>, Field<'static>)>>,
}

fn owned(f: &Field<'_>) -> Field<'static> {
    match f {
        Field::Int(v) => Field::Int(*v),
        Field::Float(v) => Field::Float(*v),
        Field::Str(s) => Field::Str(Cow::Owned(s.to_string())),
    }
}

impl StopMark {
    pub fn remember(&mut self, m: &Metric<'_>) {
        if m.name == "vigil" {
            self.fields = Some(
                m.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), owned(v)))
                    .collect(),
            );
        }
    }

    /// Writes the mark, with the boot and uptime read now; nothing when no
    /// heartbeat was ever written (the `vigil` collector is off).
    pub fn write(&self, root: &Root, clock: Clock, format: Format) {
        let Some(fields) = &self.fields else { return };
        let mut m = Metric::new("vigil", clock.now_unix_ns());
        for (k, v) in fields {
            m.field(k.clone(), v.clone());
        }
        let mut tally = vigil_collector::status::Tally::default();
        let hb = vigil_collector::heartbeat::collect(root, &mut tally);
        m.opt("boot_id", hb.boot_id.map(|b| Field::Str(Cow::Owned(b))));
        m.opt("uptime_s", hb.uptime_s.map(Field::Float));
        m.field("stopping", Field::Int(1));
        let mut line = String::new();
        match format {
            // Prometheus runs --once only: never stopped by Telegraf.
            Format::Influx | Format::Prometheus => crate::lineproto::write_metric(&mut line, &m),
            Format::Json => crate::json::write_metric(&mut line, &m),
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}
