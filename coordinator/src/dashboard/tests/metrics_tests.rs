//! `/metrics` parses as Prometheus text format 0.0.4 (a strict parser
//! written here) and its counters move as transfer events arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferry_shared::{Event, EventKind, Phase, Source};

use super::super::metrics::Metrics;
use super::{get, serve, until};

/// Series (name + sorted labels) → value. Fails on anything format 0.0.4
/// does not allow: samples before their TYPE, a family declared twice,
/// bad names, unquoted or badly escaped label values, non-numeric values,
/// histograms whose buckets decrease or whose +Inf is not the count.
fn parse(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let (mut types, mut out) = (BTreeMap::<String, String>::new(), BTreeMap::new());
    let mut helped = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !name_ok(name) || !helped.insert(name.to_string()) {
                return Err(err("bad or repeated HELP"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| err("TYPE"))?;
            let known = ["counter", "gauge", "histogram", "summary", "untyped"];
            if !name_ok(name)
                || !known.contains(&kind)
                || types.insert(name.into(), kind.into()).is_some()
            {
                return Err(err("bad or repeated TYPE"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(err("stray comment or blank line"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| err("no value"))?;
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| err("value"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, ""),
            Some((n, l)) => (
                n,
                l.strip_suffix('}').ok_or_else(|| err("unclosed labels"))?,
            ),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        if !name_ok(name) || !types.contains_key(family) {
            return Err(err("sample without a TYPE"));
        }
        let mut rest = labels;
        let mut pairs = Vec::new();
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").ok_or_else(|| err("label"))?;
            if !name_ok(k) {
                return Err(err("label name"));
            }
            let (mut val, mut chars, mut end) = (String::new(), r.char_indices(), None);
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => val.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => val.push(c),
                        _ => return Err(err("bad escape")),
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => val.push(c),
                }
            }
            let end = end.ok_or_else(|| err("unterminated label value"))?;
            pairs.push(format!("{k}={val}"));
            rest = r[end + 1..].strip_prefix(',').unwrap_or(&r[end + 1..]);
        }
        pairs.sort();
        if out
            .insert(format!("{name}{{{}}}", pairs.join(",")), v)
            .is_some()
        {
            return Err(err("duplicate series"));
        }
    }
    Ok(out)
}

fn progress(node: &str, sent: u64, total: u64) -> Event {
    Event::new(
        Source::Coordinator,
        1,
        node,
        "op1",
        Phase::Run,
        EventKind::Progress,
    )
    .counter("content_bytes_sent", sent)
    .counter("content_bytes_total", total)
    .message("distribute: rootfs: x / y to send")
}

#[test]
fn metrics_parse_and_transfer_counters_move() {
    let m = Metrics::default();
    let key = "ferry_transfer_bytes_total{cluster=c\"1,node=10.77.0.11}";
    m.observe("c\"1", &progress("10.77.0.11", 100, 1000));
    let a = parse(&m.render()).unwrap()[key];
    m.observe("c\"1", &progress("10.77.0.11", 600, 1000));
    let b = parse(&m.render()).unwrap()[key];
    // The same transfer's counters do not count twice; a new one adds.
    m.observe("c\"1", &progress("10.77.0.11", 600, 1000));
    m.observe("c\"1", &progress("10.77.0.11", 50, 70));
    let c = parse(&m.render()).unwrap()[key];
    assert_eq!((a, b, c), (100.0, 600.0, 650.0));

    let mut exec = Event::new(
        Source::Agent,
        1,
        "10.77.0.12",
        "op",
        Phase::Exec,
        EventKind::Finished,
    )
    .counter("duration_ms", 2_500);
    m.observe("c\"1", &exec);
    exec.kind = EventKind::Failed;
    m.observe("c\"1", &exec);
    m.set_agent("c\"1", "10.77.0.12", true, "0.1.0");
    m.set_lb_member("c\"1", "10.77.0.12", "10.77.0.11:6443", true);
    let lb = Event::new(Source::Agent, 2, "10.77.0.12", "", Phase::LoadBalancer, EventKind::Progress)
        .message("member 10.77.0.11:6443 drained (weight 0): health check unhealthy: refused (1 consecutive)");
    m.observe("c\"1", &lb);
    let s = parse(&m.render()).unwrap();
    let at = |name: &str, extra: &[&str]| {
        let mut l = vec!["cluster=c\"1", "node=10.77.0.12"];
        l.extend_from_slice(extra);
        l.sort();
        s.get(&format!("{name}{{{}}}", l.join(","))).copied()
    };
    assert_eq!(at("ferry_exec_total", &["outcome=ok"]), Some(1.0));
    assert_eq!(at("ferry_exec_total", &["outcome=failed"]), Some(1.0));
    assert_eq!(at("ferry_exec_duration_seconds_count", &[]), Some(2.0));
    assert_eq!(at("ferry_exec_duration_seconds_sum", &[]), Some(5.0));
    assert_eq!(
        at("ferry_exec_duration_seconds_bucket", &["le=1"]),
        Some(0.0)
    );
    assert_eq!(
        at("ferry_exec_duration_seconds_bucket", &["le=5"]),
        Some(2.0)
    );
    assert_eq!(
        at("ferry_exec_duration_seconds_bucket", &["le=+Inf"]),
        Some(2.0)
    );
    assert_eq!(at("ferry_agent_up", &["version=0.1.0"]), Some(1.0));
    assert_eq!(
        at("ferry_lb_member_healthy", &["member=10.77.0.11:6443"]),
        Some(0.0)
    );
}

#[test]
fn the_parser_is_strict() {
    for bad in [
        "x 1",
        "# TYPE x counter\nx{a=\"1} 1",
        "# TYPE x counter\nx{a=1} 1",
        "# TYPE x counter\nx one",
        "# TYPE x counter\n# TYPE x counter\nx 1",
        "# TYPE x counter\nx{a=\"\\q\"} 1",
        "# TYPE x counter\nx 1\nx 2",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_http_move_while_a_transfer_is_written() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("c1")).unwrap();
    let file = home.path().join("c1/events.jsonl");
    std::fs::write(&file, "").unwrap();
    let (_reg, addr) = serve(home.path(), None, (100, 16)).await;
    let key = "ferry_transfer_bytes_total{cluster=c1,node=10.77.0.13}";
    let mut last = 0.0;
    for sent in [1u64 << 20, 5 << 20, 9 << 20] {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        writeln!(
            f,
            "{}",
            progress("10.77.0.13", sent, 10 << 20).to_json_line()
        )
        .unwrap();
        let mut now = 0.0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while now <= last {
            assert!(
                std::time::Instant::now() < deadline,
                "counter stuck at {now}"
            );
            let (status, body) = get(addr, "/metrics", &[]).await;
            assert_eq!(status, 200);
            now = parse(&body).unwrap().get(key).copied().unwrap_or(0.0);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(now, sent as f64);
        last = now;
    }
    until("nothing", Duration::from_secs(1), || true).await;
}
