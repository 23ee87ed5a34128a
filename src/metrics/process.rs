//! Process metrics under their standard names (`process_*`, as every
//! Prometheus client library exports them, so stock dashboards and alerts
//! work unchanged), read from `/proc/self` at each scrape: a few small
//! files, no thread, nothing on the request path. Off Linux (no `/proc`)
//! the values that cannot be read are left out; the start time is then the
//! time the metrics were created.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// What one scrape reads; `None` where `/proc` did not say.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Sample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

/// The collector: `start_time` is fixed when it is created.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    start_time: f64,
}

impl ProcessCollector {
    pub fn new() -> ProcessCollector {
        ProcessCollector {
            start_time: start_time().unwrap_or_else(now_seconds),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = sample();
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, Option<i64>); 4] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit)",
                s.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        let g = ConstGauge::new(self.start_time);
        g.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            None,
            g.metric_type(),
        )?)?;
        Ok(())
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Clock ticks per second of `/proc/self/stat`'s times (USER_HZ).
fn ticks_per_second() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        n => n as f64,
    }
}

/// Reads `/proc/self`; each value on its own, so one unreadable file costs
/// only its metric.
pub(super) fn sample() -> Sample {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let limits = std::fs::read_to_string("/proc/self/limits").ok();
    Sample {
        cpu_seconds: stat
            .as_deref()
            .and_then(cpu_ticks)
            .map(|t| t as f64 / ticks_per_second()),
        resident_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
        virtual_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX)),
        max_fds: limits.as_deref().and_then(max_open_files),
    }
}

/// The fields of `/proc/self/stat` after the command name (which may hold
/// spaces and parentheses: everything up to the last `)` is skipped).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_ascii_whitespace().collect())
}

/// utime + stime (fields 14 and 15; after the command name they are the
/// 12th and 13th), in clock ticks.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let f = stat_fields(stat)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    utime.checked_add(stime)
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: i64 = line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(i64::MAX),
        n => n.parse().ok(),
    }
}

/// The process start: boot time (`btime` of `/proc/stat`) plus the
/// process's `starttime` (field 22 of `/proc/self/stat`, ticks since boot).
fn start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    start_time_of(&stat, &boot, ticks_per_second())
}

fn start_time_of(stat: &str, boot_stat: &str, ticks: f64) -> Option<f64> {
    let start_ticks: u64 = stat_fields(stat)?.get(19)?.parse().ok()?;
    let btime: u64 = boot_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime as f64 + start_ticks as f64 / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (realm gate) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615";

    #[test]
    fn parses_proc_formats_with_a_command_name_holding_spaces_and_parentheses() {
        assert_eq!(cpu_ticks(STAT), Some(325));
        assert_eq!(
            start_time_of(STAT, "cpu 1 2 3\nbtime 1700000000\n", 100.0),
            Some(1_700_000_000.0 + 1234.56)
        );
        let status = "Name:\trealmgate\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(status_kib(status, "VmSize:"), Some(123456 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_plausible_values() {
        let s = sample();
        assert!(s.cpu_seconds.is_some_and(|c| c >= 0.0));
        assert!(s.resident_bytes.is_some_and(|r| r > 1024 * 1024));
        assert!(s.open_fds.is_some_and(|n| n >= 3));
        assert!(s.max_fds.is_some_and(|n| n >= s.open_fds.unwrap_or(0)));
        let start = start_time().unwrap();
        let now = now_seconds();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start} vs {now}"
        );
    }
}
