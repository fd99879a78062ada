//! The guide's commands work as written. Every command line of every ```sh
//! block in README.md, docs/*.md and benches/README.md is checked as far as
//! it can be without side effects:
//!
//! - `cargo run [--release] [--bin NAME] -- ARGS` names a binary that exists
//!   (no `--bin`: the package's `default-run`), and that binary accepts ARGS:
//!   the server is run with ARGS and `--print-config`, the load tool with ARGS
//!   and `--check`, and each must exit 0. `target/*/ferrows ARGS` and
//!   `target/*/ferrows-load ARGS` likewise.
//! - `cargo bench --bench NAME -- ARGS` names a bench whose source knows each flag;
//!   `cargo +nightly fuzz run TARGET` and `fuzz/run TARGET` name a fuzz target.
//! - A repository script (`autobahn/run server`) exists, is executable and
//!   mentions each word it is given.
//! - Every file of the repository a command names exists.
//! - Anything else is a tool from a known list; a command this test does not
//!   know fails it, so that a new kind of command gets a check or a `text` block.
//!
//! Relative links of the same pages must point to files that exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Tools of the system whose lines are taken as they are.
const KNOWN_TOOLS: &[&str] = &[
    "apt-get",
    "cat",
    "cd",
    "chromium",
    "curl",
    "docker",
    "echo",
    "export",
    "git",
    "jq",
    "kill",
    "ls",
    "nginx",
    "node",
    "npm",
    "npx",
    "openssl",
    "perf",
    "pgrep",
    "pip",
    "python3",
    "redis-cli",
    "redis-server",
    "rustup",
    "sleep",
    "sudo",
    "taskset",
    "ulimit",
    "wait",
    "wc",
    "websocat",
];

/// Cargo subcommands that take no arguments this test could check.
const PLAIN_CARGO: &[&str] = &["build", "check", "clippy", "doc", "fmt", "install", "test", "tree"];

/// The pages whose commands and links are checked.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut pages = vec![root.join("README.md")];
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        pages.extend(docs);
    }
    let benches = root.join("benches/README.md");
    if benches.exists() {
        pages.push(benches);
    }
    pages
}

fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT).unwrap_or(path).display().to_string()
}

/// The command lines of a page's shell blocks, with their line numbers:
/// continuations joined, comments removed, blank lines left out.
fn shell_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = !in_block && matches!(info.trim(), "sh" | "bash" | "shell" | "console");
            continue;
        }
        if !in_block {
            continue;
        }
        let (number, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        joined.push_str(line);
        if let Some(head) = joined.strip_suffix('\\') {
            pending = Some((number, format!("{head} ")));
            continue;
        }
        let command = strip_comment(&joined).trim().to_owned();
        if !command.is_empty() {
            lines.push((number, command));
        }
    }
    lines
}

/// The line without its `# comment` (a `#` at the start of a word, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

/// Splits a line into words as a shell would for these simple lines: quotes
/// group, `$(...)` and `$NAME` stand for a placeholder (`1`), and the
/// operators `&&`, `||`, `;`, `|` and a trailing `&` end a command.
fn commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    let mut quote = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (_, '$') => {
                // A command substitution or a variable: a placeholder value.
                if chars.peek() == Some(&'(') {
                    let mut depth = 0;
                    for c in chars.by_ref() {
                        depth += i32::from(c == '(') - i32::from(c == ')');
                        if depth == 0 {
                            break;
                        }
                    }
                } else {
                    let braced = chars.peek() == Some(&'{');
                    while chars.peek().is_some_and(|c| c.is_ascii_alphanumeric() || "_{}".contains(*c)) {
                        if chars.next() == Some('}') && braced {
                            break;
                        }
                    }
                }
                word.get_or_insert_with(String::new).push('1');
            }
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    commands.last_mut().unwrap().push(w);
                }
            }
            (None, '&' | '|' | ';') => {
                if let Some(w) = word.take() {
                    commands.last_mut().unwrap().push(w);
                }
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                commands.push(Vec::new());
            }
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        commands.last_mut().unwrap().push(w);
    }
    commands.retain(|c| !c.is_empty());
    commands
}

/// The package's `default-run`, from Cargo.toml.
fn default_run() -> Option<String> {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    manifest.lines().find_map(|l| {
        let value = l.strip_prefix("default-run")?.trim_start().strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// The names of the `[[bench]]` targets.
fn benches() -> Vec<String> {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_bench = line.trim() == "[[bench]]";
        } else if let (true, Some(value)) = (in_bench, line.strip_prefix("name = ")) {
            names.push(value.trim_matches('"').to_owned());
        }
    }
    names
}

fn fuzz_targets() -> Vec<String> {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("fuzz/Cargo.toml")).unwrap();
    manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = "))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|name| name != "ferrows-fuzz")
        .collect()
}

/// Runs one of the package's binaries with `args` (and `env`) in the
/// repository root; `Err` with its stderr unless it exits 0.
fn run_binary(binary: &str, args: &[String], env: &[(String, String)]) -> Result<(), String> {
    let (path, extra) = match binary {
        "ferrows" => (env!("CARGO_BIN_EXE_ferrows"), "--print-config"),
        "ferrows-load" => (env!("CARGO_BIN_EXE_ferrows-load"), "--check"),
        other => return Err(format!("no binary {other:?} (the package has ferrows and ferrows-load)")),
    };
    let mut command = Command::new(path);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FERROWS_") {
            command.env_remove(name);
        }
    }
    let output = command
        .current_dir(ROOT)
        .args(args)
        .arg(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("cannot run {binary}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{binary} {} {extra}` exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether `word` names a file of the repository (its first component is a
/// committed top-level entry, or it is a TOML file), which must then exist.
fn repository_path(word: &str) -> Option<PathBuf> {
    let word = word.split_once('=').map_or(word, |(flag, value)| if flag.starts_with('-') { value } else { word });
    if word.starts_with(['-', '/', '~']) || word.contains("://") || word.contains('*') {
        return None;
    }
    let first = word.split('/').next()?;
    let top_level = ["src", "tests", "benches", "fuzz", "autobahn", "examples", "docs", ".ci"];
    let named = (word.contains('/') && top_level.contains(&first)) || word.ends_with(".toml") || word.ends_with(".md");
    named.then(|| Path::new(ROOT).join(word))
}

/// Checks one command; `Err` says why it fails.
fn check(words: &[String]) -> Result<(), String> {
    let mut env = Vec::new();
    let mut words = words;
    while let Some((name, value)) = words.first().and_then(|w| w.split_once('=')) {
        if !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            break;
        }
        env.push((name.to_owned(), value.to_owned()));
        words = &words[1..];
    }
    let Some((program, args)) = words.split_first() else { return Ok(()) };
    for word in words {
        if let Some(path) = repository_path(word) {
            if !path.exists() {
                return Err(format!("{word}: no such file in the repository"));
            }
        }
    }
    match program.as_str() {
        "cargo" => check_cargo(args, &env),
        "sudo" => check(args),
        _ => {
            let binary = program.rsplit('/').next().unwrap_or(program);
            let built = program.starts_with("target/") || !program.contains('/');
            if built && ["ferrows", "ferrows-load"].contains(&binary) {
                return run_binary(binary, args, &env);
            }
            if program.contains('/') {
                return check_script(program, args);
            }
            if KNOWN_TOOLS.contains(&program.as_str()) {
                return Ok(());
            }
            Err(format!(
                "{program}: this test does not know how to check it (add a check or a known tool, or use a text block)"
            ))
        }
    }
}

fn check_cargo(args: &[String], env: &[(String, String)]) -> Result<(), String> {
    let (toolchain, args) = match args.split_first() {
        Some((t, rest)) if t.starts_with('+') => (Some(t.as_str()), rest),
        _ => (None, args),
    };
    let Some((subcommand, rest)) = args.split_first() else {
        return Err("cargo without a subcommand".into());
    };
    let (own, after) = match rest.iter().position(|a| a == "--") {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let value_of = |flag: &str| own.iter().position(|a| a == flag).and_then(|at| own.get(at + 1)).cloned();
    match subcommand.as_str() {
        "run" => {
            let known = [
                "--release",
                "--bin",
                "--example",
                "--features",
                "-F",
                "--no-default-features",
                "--all-features",
                "-q",
            ];
            let takes_value = ["--bin", "--example", "--features", "-F"];
            let mut skip = false;
            for flag in own {
                if std::mem::take(&mut skip) {
                    continue;
                }
                if !known.contains(&flag.as_str()) {
                    return Err(format!("cargo run {flag}: not a flag this test knows"));
                }
                skip = takes_value.contains(&flag.as_str());
            }
            if let Some(example) = value_of("--example") {
                let path = Path::new(ROOT).join("examples").join(format!("{example}.rs"));
                return if path.exists() { Ok(()) } else { Err(format!("no example {example}")) };
            }
            let binary = match value_of("--bin") {
                Some(bin) => bin,
                None => default_run().ok_or("cargo run without --bin, and Cargo.toml has no default-run")?,
            };
            run_binary(&binary, after, env)
        }
        "bench" => {
            let Some(name) = value_of("--bench") else { return Ok(()) };
            if !benches().contains(&name) {
                return Err(format!("no bench {name} in Cargo.toml"));
            }
            let source =
                std::fs::read_to_string(Path::new(ROOT).join(format!("benches/{name}.rs"))).unwrap_or_default();
            match after.iter().find(|a| a.starts_with("--") && !source.contains(&format!("\"{a}\""))) {
                Some(flag) => Err(format!("benches/{name}.rs does not take {flag}")),
                None => Ok(()),
            }
        }
        "fuzz" if toolchain.is_some() => match (rest.first().map(String::as_str), rest.get(1)) {
            (Some("run"), Some(target)) if !fuzz_targets().contains(target) => Err(format!("no fuzz target {target}")),
            _ => Ok(()),
        },
        other if PLAIN_CARGO.contains(&other) => Ok(()),
        other => Err(format!("cargo {other}: not a subcommand this test knows")),
    }
}

/// A script of the repository: it exists, may be run, and mentions each word it is given.
fn check_script(program: &str, args: &[String]) -> Result<(), String> {
    let path = Path::new(ROOT).join(program);
    let text = std::fs::read_to_string(&path).map_err(|_| format!("{program}: no such script in the repository"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map_err(|e| e.to_string())?.permissions().mode();
        if mode & 0o111 == 0 {
            return Err(format!("{program} is not executable"));
        }
    }
    if program == "fuzz/run" {
        return check_fuzz_run(&text, args);
    }
    let word = |a: &String| !a.is_empty() && !a.chars().all(|c| c.is_ascii_digit() || c == '.');
    match args.iter().filter(|a| word(a)).find(|a| !text.contains(a.as_str())) {
        Some(arg) if program != "fuzz/run" => Err(format!("{program} does not mention {arg:?}")),
        _ => Ok(()),
    }
}

#[test]
fn every_shell_command_of_the_guide_works_as_written() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (number, line) in shell_lines(&text) {
            for command in commands(&line) {
                checked += 1;
                if let Err(why) = check(&command) {
                    failures.push(format!("{}:{number}: `{line}`: {why}", relative(&page)));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} commands found: are the shell blocks still marked ```sh?");
    assert!(failures.is_empty(), "{} command(s) fail:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_plain_cargo_run_runs_the_server() {
    assert_eq!(default_run().as_deref(), Some("ferrows"), "Cargo.toml needs default-run = \"ferrows\"");
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(
        shell_lines(&readme).iter().any(|(_, line)| line == "cargo run --release"),
        "the README shows the plain `cargo run --release`"
    );
}

/// `fuzz/run [OPTIONS] [cmin|report] [TARGET|all] [SECONDS]`: each option
/// is one the script handles, and the target (or a `TARGET` placeholder) exists.
fn check_fuzz_run(script: &str, args: &[String]) -> Result<(), String> {
    let mut args = args.iter().map(String::as_str).peekable();
    while let Some(option) = args.next_if(|a| a.starts_with("--")) {
        if !script.contains(option) {
            return Err(format!("fuzz/run does not take {option}"));
        }
        if matches!(option, "--jobs" | "--runs" | "--sanitizer") && args.next().is_none() {
            return Err(format!("fuzz/run {option} takes a value"));
        }
    }
    args.next_if(|a| matches!(*a, "cmin" | "report"));
    match args.next() {
        Some(target)
            if target != "all" && !target.contains("TARGET") && !fuzz_targets().contains(&target.to_owned()) =>
        {
            Err(format!("no fuzz target {target}"))
        }
        _ => Ok(()),
    }
}

#[test]
fn the_guide_stays_a_guide() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 500,
        "README.md has {lines} lines: reference belongs in rustdoc or docs/, figures in benches/README.md"
    );
}

#[test]
fn relative_links_point_to_files_that_exist() {
    let mut broken = BTreeMap::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for (at, _) in text.match_indices("](") {
            let target = &text[at + 2..];
            let Some(end) = target.find(')') else { continue };
            let target = target[..end].split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            if !dir.join(target).exists() {
                broken.entry(relative(&page)).or_insert_with(Vec::new).push(target.to_owned());
            }
        }
    }
    assert!(broken.is_empty(), "links to missing files: {broken:?}");
}

#[test]
fn the_checker_understands_the_lines_it_reads() {
    let text = "```sh\ncargo run --release -- --listen 1 \\\n  --loops 2   # a comment\n# only a comment\n```\n```text\nnot a command\n```\n";
    assert_eq!(shell_lines(text), [(2, "cargo run --release -- --listen 1    --loops 2".to_owned())]);
    assert_eq!(
        commands(r#"A=1 x --k "$KEY" 'a b' --pid $(pgrep -x ferrows) & y && z | w"#),
        [vec!["A=1", "x", "--k", "1", "a b", "--pid", "1"], vec!["y"], vec!["z"], vec!["w"],]
    );
    assert!(check(&["cargo".into(), "run".into(), "--release".into()]).is_ok());
    let bad = |line: &str| check(&commands(line)[0]).unwrap_err();
    assert!(bad("cargo run --release -- --no-such-flag").contains("--no-such-flag"));
    assert!(bad("cargo run --bin nope").contains("no binary \"nope\""));
    assert!(bad("target/release/ferrows-load echo --members 3").contains("exited"));
    assert!(bad("cargo bench --bench nope").contains("no bench nope"));
    assert!(bad("autobahn/run sideways").contains("does not mention \"sideways\""));
    assert!(bad("fuzz/run no_such_target 10").contains("no fuzz target"));
    assert!(bad("fuzz/run --no-such-option all 10").contains("does not take"));
    assert!(bad("fuzz/run report no_such_target").contains("no fuzz target"));
    assert!(bad("cargo run --release -- --config missing.toml").contains("missing.toml"));
    assert!(bad("frobnicate --all").contains("does not know"));
}
