//! The README is a test: its ```sh blocks run, in order, in one bash session,
//! against a real `tollgate serve` on a fresh data directory, and what they
//! print must match the expectations written under them.
//!
//! The convention (also in ARCHITECTURE.md, "The README is a test"):
//!
//! - A fenced block whose info string is `sh` runs; `sh no-run` (starting the
//!   server, the alias, CI and benchmark commands) and every other language are
//!   only shown. The runner starts `serve` itself, with the built binary, on a
//!   free port, in a temporary directory that is the session's working
//!   directory, with `TOLLGATE_DATA_DIR` set and the binary's directory first
//!   on `PATH` (so `tollgate` is the binary under test).
//! - The README writes the server's address as `127.0.0.1:8080` (the default of
//!   `serve`); the runner rewrites it to the real address in the commands and
//!   back to `127.0.0.1:8080` in their output.
//! - The script runs with `set -euo pipefail`: a command that fails fails the
//!   test, naming the block and README line, with the output so far and the
//!   server's log. `curl` runs with `--fail-with-body --show-error` (a curlrc
//!   in `CURL_HOME`), so an HTTP error status is a failing command too.
//! - Lines `# ⇒ text` (`# ⇒` alone for an empty line) are the expected
//!   standard output of everything above them since the block's start or the
//!   previous group of `# ⇒` lines; output without such lines is not checked.
//!   Before comparing, the output's UUIDs become `[UUID]`, RFC 3339 times
//!   `[TIME]`, dates `[DATE]`, invoice names `[INVOICE]`, credit note names
//!   `[CREDIT_NOTE]` and payment method names `[PM]`; in the expectation `[..]` matches any text within a line
//!   and `...` on a line of its own any number of lines (snapbox). Runs of
//!   spaces count as one space and trailing spaces are ignored: table columns
//!   move with the width of what is redacted.
//! - `SNAPSHOTS=overwrite cargo test -p tollgate --test cli readme` writes the
//!   actual output into README.md in place of the expectations that differ
//!   (whitespace included), keeping the `[..]` and `...` that still match.
//! - The caller's `TOLLGATE_*` variables are removed for the server and the
//!   script.
//!
//! The test needs bash, curl, jq, GNU date and base64. Without one of them it
//! says it is skipped, unless `TOLLGATE_TEST_README=1` (set by `.ci/run`),
//! which makes that a failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use regex::Regex;
use snapbox::Data;
use snapbox::assert::Action;
use snapbox::filter::NormalizeToExpected;

use crate::support::BIN;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
/// How the README writes the server's address.
const DOCUMENTED_ADDR: &str = "127.0.0.1:8080";
/// Marks a line of expected output.
const EXPECT: &str = "# ⇒";
/// Printed between chunks to split the session's output.
const MARKER: &str = "@@tollgate-readme-chunk@@";
/// The whole walkthrough must finish within this.
const TIMEOUT: Duration = Duration::from_secs(600);

/// A runnable ```sh block.
struct Block {
    /// README line (1-based) of the block's first line of code.
    first_line: usize,
    lines: Vec<String>,
}

/// Lines of a block up to and including one group of `# ⇒` lines (or the
/// block's end).
struct Chunk {
    block: usize,
    /// (README line, code)
    code: Vec<(usize, String)>,
    expected: Option<Expected>,
}

struct Expected {
    /// README lines (1-based, inclusive) holding the expectation.
    first_line: usize,
    last_line: usize,
    indent: String,
    text: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// The ```sh blocks of `markdown` that run.
fn runnable_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let mut words = info.split_whitespace();
                let runs = words.next() == Some("sh") && !words.any(|w| w == "no-run");
                if runs {
                    current = Some((0, String::new()));
                }
            }
            Event::Text(text) => {
                if let Some((first, code)) = current.as_mut() {
                    if code.is_empty() {
                        *first = line_of(markdown, range.start);
                    }
                    code.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((first_line, code)) = current.take()
                    && !code.is_empty()
                {
                    let lines = code.lines().map(str::to_owned).collect();
                    blocks.push(Block { first_line, lines });
                }
            }
            _ => {}
        }
    }
    blocks
}

fn expectation(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix(EXPECT)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

fn chunks(blocks: &[Block]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let mut chunk = Chunk {
            block: b,
            code: Vec::new(),
            expected: None,
        };
        let mut lines = block.lines.iter().enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            let readme_line = block.first_line + i;
            let Some(first) = expectation(line) else {
                chunk.code.push((readme_line, line.clone()));
                continue;
            };
            let mut text = vec![first.to_owned()];
            let mut last_line = readme_line;
            while let Some((j, next)) = lines.peek() {
                let Some(more) = expectation(next) else { break };
                text.push(more.to_owned());
                last_line = block.first_line + j;
                lines.next();
            }
            chunk.expected = Some(Expected {
                first_line: readme_line,
                last_line,
                indent: line[..line.len() - line.trim_start().len()].to_owned(),
                text: text.join("\n"),
            });
            chunks.push(std::mem::replace(
                &mut chunk,
                Chunk {
                    block: b,
                    code: Vec::new(),
                    expected: None,
                },
            ));
        }
        if !chunk.code.iter().all(|(_, l)| l.trim().is_empty()) {
            chunks.push(chunk);
        }
    }
    chunks
}

/// The bash script, and for each of its lines the README line it came from.
fn script(chunks: &[Chunk], addr: &str) -> (String, Vec<Option<usize>>) {
    let mut script = String::new();
    let mut origin = Vec::new();
    let mut push = |line: &str, from: Option<usize>| {
        script.push_str(line);
        script.push('\n');
        origin.push(from);
    };
    push("set -euo pipefail", None);
    push("trap 'echo \"@@readme-failed-at@@ $LINENO\" >&2' ERR", None);
    for chunk in chunks {
        push(&format!("printf '\\n%s\\n' '{MARKER}'"), None);
        for (line, code) in &chunk.code {
            push(&code.replace(DOCUMENTED_ADDR, addr), Some(*line));
        }
    }
    push(&format!("printf '\\n%s\\n' '{MARKER}'"), None);
    (script, origin)
}

/// Replaces what changes from run to run with placeholders. In a table row (a
/// line with a run of spaces between words) a placeholder followed by a space is padded to
/// the width of what it replaces, so that the columns stay aligned.
fn redact(output: &str, addr: &str) -> String {
    output
        .replace(addr, DOCUMENTED_ADDR)
        .split('\n')
        .map(redact_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What varies from run to run, each kind as a named group: the name is the
/// placeholder. Times come before dates (a time starts with one).
static VARYING: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(
        r"(?x)\b(?:
          (?P<UUID>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})
        | (?P<INVOICE>inv-[0-9]{4}-[0-9]{2}-[0-9]{4})
        | (?P<CREDIT_NOTE>cn-[0-9]{4}-[0-9]{2}-[0-9]{4,})
        | (?P<PM>pm-[0-9a-f]{12})
        | (?P<TIME>[0-9]{4}-[0-9]{2}-[0-9]{2}[T\ ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)
        | (?P<DATE>[0-9]{4}-[0-9]{2}-[0-9]{2})
        )\b",
    )
    .expect("a valid pattern")
});

fn redact_line(line: &str) -> String {
    let table = line.trim().contains("  ");
    VARYING
        .replace_all(line, |caps: &regex::Captures| {
            let (name, found) = VARYING
                .capture_names()
                .flatten()
                .find_map(|n| caps.name(n).map(|m| (n, m)))
                .expect("one group matched");
            let placeholder = format!("[{name}]");
            let padded = table && line[found.end()..].starts_with(' ');
            let width = if padded {
                found.len().max(placeholder.len())
            } else {
                0
            };
            format!("{placeholder:<width$}")
        })
        .into_owned()
}

/// `actual` with the parts that `expected`'s `[..]` and `...` match written as
/// in `expected`.
fn normalize(actual: &str, expected: &str) -> String {
    NormalizeToExpected::new()
        .redact()
        .normalize(Data::text(actual.to_owned()), &Data::text(expected.to_owned()))
        .render()
        .expect("text data renders")
}

/// Each line with its runs of spaces made one space and no trailing space:
/// expectations are compared so, because table columns move with the width of
/// what is redacted (and with changes to the CLI's table layout).
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `tollgate serve` in `dir`, killed on drop.
struct Serve {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, data_dir: &Path, env: &[(String, String)]) -> Self {
        let log = dir.join("server.log");
        let mut child = without_tollgate_env(Command::new(BIN))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("TOLLGATE_DATA_DIR", data_dir)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create server.log"))
            .spawn()
            .expect("spawn tollgate serve");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("serve exited before listening: {}", read(&log)))
                .expect("read serve's stdout");
            if let Some(addr) = line.strip_prefix("tollgate listening on ") {
                break addr.trim().trim_start_matches("http://").to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr, log }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `command` without the caller's `TOLLGATE_*` settings (a database URL, a
/// grace or retry schedule would change what the walkthrough prints).
fn without_tollgate_env(mut command: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TOLLGATE_") {
            command.env_remove(name);
        }
    }
    command
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether the tools the walkthrough needs are here; panics when they are
/// required (`TOLLGATE_TEST_README=1`) and missing.
fn tools_present() -> bool {
    let required = std::env::var("TOLLGATE_TEST_README").is_ok_and(|v| v == "1");
    let missing: Vec<&str> = ["bash", "curl", "jq", "base64", "date"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        assert!(
            !required,
            "TOLLGATE_TEST_README=1 but {} missing: the README cannot run",
            missing.join(", ")
        );
        eprintln!(
            "readme: skipped, {} not installed (TOLLGATE_TEST_README=1 makes this a failure)",
            missing.join(", ")
        );
        return false;
    }
    true
}

#[test]
fn readme_walkthrough_runs_and_prints_what_it_says() {
    if tools_present() {
        walkthrough(&[], "today");
    }
}

/// Where libfaketime is, for [`readme_walkthrough_runs_on_any_date`].
const FAKETIME_VAR: &str = "TOLLGATE_TEST_README_FAKETIME";

/// The walkthrough's dates are relative to today; this runs it as if today
/// were a month's last minutes, a leap day and a short month's end, with
/// libfaketime (Debian `faketime`) preloaded into the server and the script's
/// commands:
/// one offset from the real clock for every process (`FAKETIME=+SECONDS`), so
/// that time still passes and the processes agree. It runs when
/// `TOLLGATE_TEST_README_FAKETIME` names `libfaketimeMT.so.1` (`.ci/run` sets
/// it); without it, it says it is skipped.
#[test]
fn readme_walkthrough_runs_on_any_date() {
    let Some(lib) = std::env::var_os(FAKETIME_VAR).filter(|v| !v.is_empty()) else {
        eprintln!("readme on other dates: skipped, {FAKETIME_VAR} does not name libfaketime");
        return;
    };
    let lib = PathBuf::from(lib);
    assert!(lib.is_file(), "{FAKETIME_VAR}={} is not a file", lib.display());
    if !tools_present() {
        return;
    }
    let now = jiff::Timestamp::now();
    for date in [
        "2026-12-31T23:58:00Z",
        "2027-02-28T23:59:30Z",
        "2028-02-29T00:00:10Z",
        "2027-07-31T12:00:00Z",
    ] {
        let target: jiff::Timestamp = date.parse().unwrap();
        let offset = target.as_second() - now.as_second();
        let env = [
            ("LD_PRELOAD".to_owned(), lib.display().to_string()),
            ("FAKETIME".to_owned(), format!("{offset:+}")),
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
        ];
        walkthrough(&env, date);
    }
}

/// Runs the README's blocks against a fresh server, with `env` added for the
/// server and the script, and checks (or with `SNAPSHOTS=overwrite`, when
/// `env` is empty, rewrites) the expectations.
fn walkthrough(env: &[(String, String)], label: &str) {
    let markdown = std::fs::read_to_string(README).expect("read README.md");
    let blocks = runnable_blocks(&markdown);
    assert!(!blocks.is_empty(), "README.md has no ```sh block to run");
    let chunks = chunks(&blocks);

    let work = tempfile::TempDir::new().expect("temp dir");
    let data_dir = work.path().join("tollgate-data");
    let curl_home = work.path().join(".curl");
    std::fs::create_dir(&curl_home).expect("create curl home");
    std::fs::write(curl_home.join(".curlrc"), "fail-with-body\nshow-error\n").expect("write .curlrc");

    let started = Instant::now();
    let server = Serve::start(work.path(), &data_dir, env);
    let (mut script, mut origin) = script(&chunks, &server.addr);
    // The script exports `env` itself rather than being started with it: bash
    // must not be preloaded with libfaketime, whose state a `$(…)` subshell
    // would copy and, exiting, tear down (its shared memory) under the
    // commands that still use it. Each command it starts loads it afresh.
    for (name, value) in env.iter().rev() {
        script.insert_str(0, &format!("export {name}='{value}'\n"));
        origin.insert(0, None);
    }
    let script_path = work.path().join(".readme.sh");
    std::fs::write(&script_path, &script).expect("write the script");
    let bin_dir = Path::new(BIN).parent().expect("the binary has a directory");
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .expect("PATH");
    let stdout_path = work.path().join(".readme.stdout");
    let stderr_path = work.path().join(".readme.stderr");
    let mut bash = without_tollgate_env(Command::new("bash"))
        .args(["--noprofile", "--norc"])
        .arg(&script_path)
        .current_dir(work.path())
        .env("PATH", path)
        .env("TOLLGATE_DATA_DIR", &data_dir)
        .env("CURL_HOME", &curl_home)
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .expect("spawn bash");
    let status = loop {
        if let Some(status) = bash.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = bash.kill();
            let _ = bash.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let stdout = read(&stdout_path);
    let stderr = read(&stderr_path);
    let outputs: Vec<&str> = stdout.split(&format!("\n{MARKER}\n")).skip(1).collect();

    let failure = match status {
        None => Some(format!("the walkthrough did not finish within {TIMEOUT:?}")),
        Some(s) if !s.success() => Some(format!("the walkthrough failed ({s})")),
        Some(_) => None,
    };
    if let Some(failure) = failure {
        // The chunk that was running: the last one that printed its marker.
        let running = outputs
            .len()
            .saturating_sub(1)
            .min(chunks.len().saturating_sub(1));
        let at = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("@@readme-failed-at@@ "))
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .next_back()
            .and_then(|n| origin.get(n.wrapping_sub(1)).copied().flatten());
        let where_ = match at {
            Some(line) => format!(
                "README.md:{line} (block {}): {}",
                chunks[running].block + 1,
                markdown.lines().nth(line - 1).unwrap_or("")
            ),
            None => format!(
                "block {} (README.md:{})",
                chunks[running].block + 1,
                chunks[running].code.first().map_or(0, |c| c.0)
            ),
        };
        panic!(
            "{failure} ({label}) at {where_}\n--- its output ---\n{}\n--- stderr (last 40 lines) ---\n{}\n--- server log (last 60 lines) ---\n{}",
            outputs.last().copied().unwrap_or(""),
            tail(&stderr, 40),
            tail(&read(&server.log), 60),
        );
    }
    let addr = server.addr.clone();
    drop(server);
    eprintln!(
        "readme ({label}): {} blocks, {} chunks ran in {:.1} s",
        blocks.len(),
        chunks.len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(
        outputs.len(),
        chunks.len() + 1,
        "the output has a marker per chunk; did a command print {MARKER:?}?"
    );

    let overwrite = env.is_empty() && std::env::var("SNAPSHOTS").is_ok_and(|v| v == "overwrite");
    let mut mismatches = Vec::new();
    let mut rewrites: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    for (chunk, output) in chunks.iter().zip(&outputs) {
        let Some(expected) = &chunk.expected else { continue };
        let actual = redact(output.trim_end_matches('\n'), &addr);
        let label = format!(
            "README.md:{} (block {}, {label})",
            expected.first_line,
            chunk.block + 1
        );
        if overwrite {
            // Exact, so that a new table layout is written too.
            let new = normalize(&actual, &expected.text)
                .lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join("\n");
            if new != expected.text {
                let lines: String = new
                    .lines()
                    .map(|l| match l {
                        "" => format!("{}{EXPECT}\n", expected.indent),
                        l => format!("{}{EXPECT} {l}\n", expected.indent),
                    })
                    .collect();
                rewrites.insert(expected.first_line, (expected.last_line, lines));
                eprintln!("readme: rewrote the expectation at {label}");
            }
            continue;
        }
        let (got, want) = (squeeze(&actual), squeeze(&expected.text));
        let got = normalize(&got, &want);
        if got != want {
            let diff = snapbox::Assert::new()
                .action(Action::Verify)
                .try_eq(Some(&"actual"), Data::text(got), Data::text(want))
                .expect_err("they differ");
            mismatches.push(format!("{label}:\n{diff}"));
        }
    }
    if overwrite && !rewrites.is_empty() {
        let mut out = String::new();
        let mut skip_until = 0;
        for (i, line) in markdown.split_inclusive('\n').enumerate() {
            let n = i + 1;
            if n <= skip_until {
                continue;
            }
            if let Some((last, new)) = rewrites.get(&n) {
                out.push_str(new);
                skip_until = *last;
                continue;
            }
            out.push_str(line);
        }
        std::fs::write(README, out).expect("write README.md");
    }
    assert!(
        mismatches.is_empty(),
        "README.md's expectations no longer match (SNAPSHOTS=overwrite cargo test -p tollgate --test cli readme rewrites them):\n\n{}",
        mismatches.join("\n\n")
    );
}

#[test]
fn readme_runner_splits_blocks_at_expectations_and_redacts_what_varies() {
    let markdown = "text\n\n```sh\necho a\n# ⇒ a\necho b\necho c\n# ⇒ b\n# ⇒\n# ⇒ c\ntrue\n```\n\n```sh no-run\nserve\n```\n\n```json\n{}\n```\n";
    let blocks = runnable_blocks(markdown);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].first_line, 4);
    let chunks = chunks(&blocks);
    type Summary<'a> = (Vec<usize>, Option<(usize, usize, &'a str)>);
    let summary: Vec<Summary> = chunks
        .iter()
        .map(|c| {
            (
                c.code.iter().map(|(line, _)| *line).collect(),
                c.expected
                    .as_ref()
                    .map(|e| (e.first_line, e.last_line, e.text.as_str())),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (vec![4], Some((5, 5, "a"))),
            (vec![6, 7], Some((8, 10, "b\n\nc"))),
            (vec![11], None),
        ]
    );
    let (script, origin) = script(&chunks, "127.0.0.1:4242");
    assert_eq!(script.lines().count(), origin.len());
    assert_eq!(
        origin.iter().flatten().copied().collect::<Vec<_>>(),
        [4, 6, 7, 11]
    );

    assert_eq!(
        redact(
            "at http://127.0.0.1:4242 inv-2026-11-0002 cn-2026-12-0001 pm-0c0f59f37907 2026-11-30T12:43:35.4194Z 2026-11-30 x1f0e8a0b-c0de-4bad-8000-000000000000",
            "127.0.0.1:4242"
        ),
        "at http://127.0.0.1:8080 [INVOICE] [CREDIT_NOTE] [PM] [TIME] [DATE] x1f0e8a0b-c0de-4bad-8000-000000000000"
    );
    assert_eq!(
        redact("f0e8a0b1-c0de-4bad-8000-000000000000   PAID", "127.0.0.1:1"),
        "[UUID]                                 PAID"
    );
    assert_eq!(squeeze("  a   b  \nc "), "a b\nc");
    assert_eq!(normalize("x 12 y\nz", "x [..] y\nz"), "x [..] y\nz");
}
