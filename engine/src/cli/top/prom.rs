//! A reader of the Prometheus text exposition format, version 0.0.4 (the
//! format `metrics::render` writes): one sample a line, `name{l="v",...}
//! value [timestamp]`; `#` lines (HELP, TYPE, comments) and blank lines
//! skipped; label values with the escapes `\\`, `\"` and `\n`; values are
//! Go floats, `NaN`, `+Inf` and `-Inf` included.

/// One sample: metric name, labels in the order written, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Every sample of one scrape, in the order read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses a whole exposition; the first malformed line is the error.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_line(line).map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?);
        }
        Ok(Scrape { samples })
    }

    /// The samples of metric `name`.
    pub fn family<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the first sample of `name` carrying every label of `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.family(name).find(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v))).map(|s| s.value)
    }
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (l, after) = parse_labels(r)?;
        labels = l;
        rest = after;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    // A timestamp (milliseconds) may follow; nothing after it.
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Label names and values, in the order written.
type Labels = Vec<(String, String)>;

/// Reads `k="v",...}`; the labels and what follows the `}`.
fn parse_labels(mut r: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        r = r.trim_start();
        if let Some(after) = r.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = r.find('=').ok_or("label without '='")?;
        let key = r[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {key:?}"));
        }
        r = r[eq + 1..].trim_start().strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in a label value".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((key.to_string(), value));
        r = r[end + 1..].trim_start();
        if let Some(after) = r.strip_prefix(',') {
            r = after;
        } else if !r.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("bad value {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &Sample) -> Vec<(&str, &str)> {
        s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn samples_labels_and_comments() {
        let text = "# HELP floodgate_up 1 while every shard turns.\n\
                    # TYPE floodgate_up gauge\n\
                    floodgate_up 1\n\
                    \n\
                    # a free comment\n\
                    floodgate_link_up{state=\"up without carrier\"} 0\n\
                    floodgate_tcp_segments_in_total{shard=\"0\"} 12345 1700000000000\n\
                    floodgate_uptime_seconds 61.250\n\
                    floodgate_backend_up{ shard = \"1\" , pool=\"0\",backend=\"[2001:db8::2:10]:80\",} 1\n";
        let s = Scrape::parse(text).unwrap();
        assert_eq!(s.samples.len(), 5);
        assert_eq!(s.get("floodgate_up", &[]), Some(1.0));
        assert_eq!(s.get("floodgate_link_up", &[]), Some(0.0));
        assert_eq!(s.family("floodgate_link_up").next().unwrap().label("state"), Some("up without carrier"));
        assert_eq!(s.get("floodgate_tcp_segments_in_total", &[("shard", "0")]), Some(12345.0));
        assert_eq!(s.get("floodgate_uptime_seconds", &[]), Some(61.25));
        let b = s.family("floodgate_backend_up").next().unwrap();
        assert_eq!(labels(b), [("shard", "1"), ("pool", "0"), ("backend", "[2001:db8::2:10]:80")]);
    }

    #[test]
    fn escaped_label_values() {
        let s = Scrape::parse(r#"m{a="say \"hi\"",b="back\\slash",c="two\nlines",d="}{,="} 2"#).unwrap();
        let m = &s.samples[0];
        assert_eq!(labels(m), [("a", "say \"hi\""), ("b", "back\\slash"), ("c", "two\nlines"), ("d", "}{,=")]);
        assert_eq!(m.value, 2.0);
    }

    #[test]
    fn special_values() {
        let s = Scrape::parse("a NaN\nb +Inf\nc -Inf\nd 1e3\ne -0.5\n").unwrap();
        assert!(s.get("a", &[]).unwrap().is_nan());
        assert_eq!(s.get("b", &[]), Some(f64::INFINITY));
        assert_eq!(s.get("c", &[]), Some(f64::NEG_INFINITY));
        assert_eq!(s.get("d", &[]), Some(1000.0));
        assert_eq!(s.get("e", &[]), Some(-0.5));
    }

    #[test]
    fn missing_metrics_and_labels() {
        let s = Scrape::parse("m{shard=\"0\"} 1\n").unwrap();
        assert_eq!(s.get("other", &[]), None);
        assert_eq!(s.get("m", &[("shard", "1")]), None);
        assert_eq!(s.get("m", &[("pool", "0")]), None);
        assert_eq!(Scrape::parse("").unwrap(), Scrape::default());
        assert_eq!(Scrape::parse("# only comments\n\n").unwrap().samples, []);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        for (text, why) in [
            ("ok 1\nm\n", "line 2: no value"),
            ("m{a=\"x} 1", "unterminated"),
            ("m{a=x} 1", "not quoted"),
            ("m{a=\"x\" b=\"y\"} 1", "expected ','"),
            ("m{a=\"\\t\"} 1", "bad escape"),
            ("m one", "bad value"),
            ("m inf", "bad value"),
            ("m 1 2 3", "after the timestamp"),
            ("m 1 soon", "bad timestamp"),
            ("{a=\"1\"} 1", "no metric name"),
            ("9m 1", "no metric name"),
        ] {
            let e = Scrape::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
