//! `tessera ctl ...`: sends one request to a running shell's control socket and prints the answer.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use shell::ctl::{Request, Response};

use crate::cli::{CtlArgs, CtlCommand, CtlSocketArg, GrantsCommand, LayoutCommand};

/// Sends `request` to the shell on the control socket (`socket`, else the default) and reads
/// its first answer; the reader is left for what follows (a subscription's messages).
pub(crate) fn ask(socket: &CtlSocketArg, request: &Request) -> Result<(Response, BufReader<UnixStream>)> {
    let named = socket.ctl_socket.is_some();
    let socket = socket.ctl_socket.clone().unwrap_or_else(shell::ctl::default_socket);
    // Talk only to a shell of this user, in a directory nobody else controls.
    if let Some(dir) = socket.parent().filter(|d| d.is_dir()) {
        if named {
            shell::ctl::runtime_dir::check_named(dir)?;
        } else {
            shell::ctl::runtime_dir::check(dir)?;
        }
    }
    let mut stream = UnixStream::connect(&socket)
        .with_context(|| format!("no shell is listening on {} (is `tessera run` up?)", socket.display()))?;
    shell::ctl::runtime_dir::check_peer(&stream, &socket)?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).context("sending the request")?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).context("reading the answer")?;
    if first.is_empty() {
        bail!("the shell closed the connection without answering");
    }
    let response: Response = serde_json::from_str(&first).with_context(|| format!("unreadable answer: {first}"))?;
    Ok((response, reader))
}

/// Runs one `ctl` command; `Ok(false)` when the shell said no.
pub(crate) fn run(args: &CtlArgs) -> Result<bool> {
    let request = request_for(&args.command)?;
    let (response, reader) = ask(&args.socket, &request)?;
    if !response.ok {
        eprintln!("tessera: {}", response.error.unwrap_or_default());
        return Ok(false);
    }
    let result = response.result.unwrap_or(Value::Null);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &args.command {
        CtlCommand::Apps { json: false } => print_apps(&mut out, &result)?,
        CtlCommand::Layout(LayoutCommand::List { json: false }) => {
            for w in result.as_array().map(Vec::as_slice).unwrap_or_default() {
                let mark = if w["startup"].as_bool() == Some(true) { "*" } else { " " };
                writeln!(
                    out,
                    "{mark} {:<24} {:>3} apps  saved {}",
                    w["name"].as_str().unwrap_or("?"),
                    w["apps"],
                    w["saved_at"].as_str().unwrap_or("?")
                )?;
            }
        }
        CtlCommand::Layout(LayoutCommand::Get { .. }) => writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?,
        CtlCommand::Health { json } => return print_health(&mut out, &result, *json),
        CtlCommand::Link { json } => return print_link(&mut out, &result, *json),
        CtlCommand::Prompts { json: false } => {
            for p in result.as_array().map(Vec::as_slice).unwrap_or_default() {
                writeln!(
                    out,
                    "{:>4}  {:<16} #{:<5} {:<32} {}",
                    p["id"],
                    p["app"].as_str().unwrap_or("?"),
                    p["instance"],
                    p["permission"].as_str().unwrap_or("?"),
                    p["asks"].as_str().unwrap_or("")
                )?;
            }
        }
        CtlCommand::Grants(GrantsCommand::List { json: false }) => {
            for g in result.as_array().map(Vec::as_slice).unwrap_or_default() {
                let permission = match g["scope"].as_str() {
                    Some(s) => format!("{}:{s}", g["permission"].as_str().unwrap_or("?")),
                    None => g["permission"].as_str().unwrap_or("?").to_owned(),
                };
                writeln!(
                    out,
                    "{:<16} {:<36} {:<6} {}",
                    g["app"].as_str().unwrap_or("?"),
                    permission,
                    g["decision"].as_str().unwrap_or("?"),
                    g["decided_at"]
                )?;
            }
        }
        CtlCommand::Prompt { .. } | CtlCommand::Grants(GrantsCommand::Revoke { .. }) => {}
        CtlCommand::Launch { .. } => writeln!(out, "{}", result["instance"])?,
        CtlCommand::Subscribe { .. } => {
            out.flush()?;
            for line in reader.lines() {
                let line = line.context("reading messages")?;
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
        CtlCommand::Screenshot { .. } | CtlCommand::Close { .. } | CtlCommand::Quit | CtlCommand::Publish { .. } => {
            if let Value::Object(_) = result {
                writeln!(out, "{result}")?;
            }
        }
        _ => writeln!(out, "{result}")?,
    }
    Ok(true)
}

fn print_apps(out: &mut impl Write, apps: &Value) -> Result<()> {
    writeln!(
        out,
        "{:<9} {:<16} {:<11} {:>8} {:<9} {:<16} {:>8} {:>10} {:>6}  LAST EXIT",
        "INSTANCE", "APP", "STATE", "PID", "GROUP", "WEB PIDS", "RESTARTS", "MEMORY", "CPU"
    )?;
    for a in apps.as_array().map(Vec::as_slice).unwrap_or_default() {
        let text = |k: &str| match &a[k] {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let web: Vec<String> =
            a["web_pids"].as_array().map(|v| v.iter().map(ToString::to_string).collect()).unwrap_or_default();
        let memory = a["memory_bytes"].as_u64().map_or_else(|| "-".to_owned(), |b| format!("{} MiB", b >> 20));
        let cpu = a["cpu_percent"].as_f64().map_or_else(|| "-".to_owned(), |c| format!("{c:.0}%"));
        writeln!(
            out,
            "{:<9} {:<16} {:<11} {:>8} {:<9} {:<16} {:>8} {:>10} {:>6}  {}",
            text("instance"),
            text("app"),
            text("state"),
            text("pid"),
            text("group"),
            if web.is_empty() { "-".to_owned() } else { web.join(",") },
            text("restarts"),
            memory,
            cpu,
            text("last_exit"),
        )?;
    }
    Ok(())
}

/// Prints `ctl health`'s answer; `Ok(false)` (exit 1) when a service or an app is not well.
/// The request a command sends the shell.
fn request_for(command: &CtlCommand) -> Result<Request> {
    Ok(match command {
        CtlCommand::Apps { .. } => Request::Apps,
        CtlCommand::Launch { app } => Request::Launch { app: app.clone() },
        CtlCommand::Close { instance } => Request::Close { instance: *instance },
        CtlCommand::Eval { instance, js, timeout } => {
            Request::Eval { instance: *instance, js: js.clone(), timeout_ms: (timeout.max(0.0) * 1000.0) as u64 }
        }
        CtlCommand::Publish { topic, json, durable } => Request::Publish {
            topic: topic.clone(),
            data: serde_json::from_str(json).with_context(|| format!("the message is not JSON: {json}"))?,
            durable: *durable,
        },
        CtlCommand::Subscribe { pattern } => Request::Subscribe { pattern: pattern.clone() },
        CtlCommand::Screenshot { path, window } => {
            let path = if path.is_absolute() { path.clone() } else { std::env::current_dir()?.join(path) };
            Request::Screenshot { path, window: *window }
        }
        CtlCommand::Quit => Request::Quit,
        CtlCommand::Layout(LayoutCommand::Get { .. }) => Request::LayoutGet,
        CtlCommand::Layout(LayoutCommand::Save { name }) => Request::LayoutSave { name: name.clone() },
        CtlCommand::Layout(LayoutCommand::Restore { name }) => Request::LayoutRestore { name: name.clone() },
        CtlCommand::Layout(LayoutCommand::List { .. }) => Request::LayoutList,
        CtlCommand::Prompts { .. } => Request::Prompts,
        CtlCommand::Health { .. } => Request::Health,
        CtlCommand::Link { .. } => Request::Link,
        CtlCommand::Prompt { id, answer } => Request::Prompt { id: *id, answer: answer.clone() },
        CtlCommand::Grants(GrantsCommand::List { .. }) => Request::Grants,
        CtlCommand::Grants(GrantsCommand::Revoke { app, permission }) => {
            Request::GrantsRevoke { app: app.clone(), permission: permission.clone() }
        }
    })
}

/// `ctl link`: the link's state in a line (or its JSON); true while it is connected.
fn print_link(out: &mut impl Write, result: &Value, json: bool) -> Result<bool> {
    if json {
        writeln!(out, "{result}")?;
    } else {
        let field = |k: &str| result[k].as_str().map_or_else(|| result[k].to_string(), str::to_owned);
        writeln!(
            out,
            "{} as desk {} to {}; groups {}; out {}, in {}, refused {}, duplicates {}; last problem: {}",
            field("state"),
            field("desk"),
            field("server"),
            result["groups"],
            result["messages_out"],
            result["messages_in"],
            result["refused"],
            result["duplicates"],
            result["last_error"].as_str().or(result["reason"].as_str()).unwrap_or("none")
        )?;
    }
    Ok(result["state"] == "connected")
}

fn print_health(out: &mut impl Write, result: &Value, json: bool) -> Result<bool> {
    let list = |key: &str| result[key].as_array().map(Vec::as_slice).unwrap_or_default().to_vec();
    let services = list("services");
    let apps = list("apps");
    // The shell's own verdict: a row that is not ok but does not make the desk unready (a
    // failing update check, IT's configuration server down) is shown, not counted.
    let well = result["status"] == "ok";
    if json {
        writeln!(out, "{result}")?;
    } else {
        for s in &services {
            // A service whose trouble does not make the desk unready is a warning.
            let mark = match (s["ok"] == true, s["required"] != false) {
                (true, _) => "ok  ",
                (false, false) => "WARN",
                (false, true) => "FAIL",
            };
            writeln!(out, "{mark}  {:<13} {}", s["name"].as_str().unwrap_or("?"), s["detail"].as_str().unwrap_or(""))?;
        }
        for a in &apps {
            let mark = if a["ok"] == true { "ok  " } else { "FAIL" };
            let group = a["group"].as_str().map_or_else(String::new, |g| format!(" (process group {g})"));
            writeln!(
                out,
                "{mark}  {:<13} #{:<5} {}{group}",
                a["app"].as_str().unwrap_or("?"),
                a["instance"],
                a["state"].as_str().unwrap_or("?")
            )?;
        }
        for g in &list("groups") {
            let memory = g["memory_bytes"].as_u64().map_or_else(String::new, |b| format!(", {} MiB shared", b >> 20));
            writeln!(
                out,
                "ok    group {:<7} host {}, {} app(s){memory}",
                g["name"].as_str().unwrap_or("?"),
                g["pid"],
                g["views"]
            )?;
        }
    }
    Ok(well)
}
