//! Just enough of the POSIX shell language to read the scripts people put in
//! `command: ["sh", "-c", "…"]` and in exec preStop hooks.
//!
//! The script is split into simple commands (separated by `;`, `&&`, `||`, `|`, `&`, newlines and
//! parentheses), each a list of words with quotes removed. Redirections are dropped, and so are
//! here-document bodies (data, not commands); leading keywords (`then`, `do`, `!`…) are
//! skipped. `$NAME`/`${NAME}` expand to what the script itself assigned before (`T=300; …`),
//! else to what the caller knows; `$1`…`$9` and `"$@"` to the arguments after `sh -c SCRIPT
//! NAME` when the caller gives them. Each command also says whether it runs only under a
//! condition: inside `if` or `case`, as the right operand of `||`, after a test (`[ … ] &&`),
//! inside a group entered under one, in a function body, or after a conditional `exec`.
//! Commands after an unconditional `exec COMMAND` or `exit` never run and are left out.
//! Anything fancier (arithmetic, loops' iterations) is kept as literal text: the goal is to find
//! `sidekiq -t 60` or `kill -TSTP 1; sleep 30`, not to run it.

use std::collections::{HashMap, VecDeque};

/// A script that is not valid shell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// A quote opened and never closed.
    #[error("unterminated {0} quote")]
    UnterminatedQuote(&'static str),
}

/// One simple command: its words, after quote removal and known expansions.
pub type SimpleCommand = Vec<String>;

/// A simple command and whether the script runs it only under a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Its words.
    pub words: SimpleCommand,
    /// Whether the script may or may not run it, depending on what it finds at run time (see
    /// the module documentation).
    pub conditional: bool,
    /// Whether it is in the body (or the condition) of a `while`, `until` or `for` loop.
    pub in_loop: bool,
    /// Whether the signals sent to the shell reach it.
    pub signals: Signals,
}

/// Whether the signals sent to a script's shell (the kubelet's SIGTERM, a preStop's `kill 1`)
/// reach a command of the script, and whether the shell outlives it. A shell that stays the
/// container's main process keeps them: as PID 1 without a handler it ignores them, and its
/// children never hear of them. A shell that gets them without a handler (under an init that
/// signals the whole process group) dies of them, and the container ends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signals {
    /// The shell hands its process over to it (`exec COMMAND`), or traps `TERM`, passes it on
    /// (`kill`) to what it started in the background and waits for it again.
    Reach,
    /// The script's last command, run without `exec`, at the top of the script, in a form
    /// bash (5.1+) and busybox ash run in place of themselves: for bash, with nothing after it
    /// but one line break, no trap with an action set, and as `Splitter::bash_may_exec` tells
    /// (no redirection, not negated or timed, not after a `&` on its line, ending a `&&` list
    /// only where that list starts its line). dash (the `sh` of Debian-based images, such as
    /// the official Ruby ones) stays its parent all the same.
    ReachIfShellExecsLast,
    /// It runs in a pipeline (`sidekiq | tee log`): a child of the shell.
    Piped,
    /// It runs in the background (`sidekiq &`): a child of the shell.
    Background,
    /// Run without `exec` where the script may go on after it (`sidekiq; echo done`,
    /// `sidekiq || true`, a loop): a child of the shell.
    Waited,
    /// The script traps `TERM`, so its shell outlives the signal and waits for this command
    /// (one in the foreground, whose end a trap waits for; or one in the background that the
    /// script waits for again), but the signal reaches it only from an init that signals the
    /// whole process group: the trap does not pass it on.
    ReachIfGroupSignalled,
    /// It runs in the background of a script that traps `TERM` and waits for it once: the
    /// signal interrupts `wait`, the trap runs (passing it on or not), and the script ends —
    /// and with it the container, taking the command down before it is done.
    EndsFirst,
}

impl Signals {
    fn of(piped: bool, background: bool, execs: bool) -> Self {
        match (piped, background, execs) {
            (_, true, _) => Signals::Background,
            (true, false, _) => Signals::Piped,
            (false, false, true) => Signals::Reach,
            (false, false, false) => Signals::Waited,
        }
    }

    /// Whether the command runs beside the shell rather than before its next command.
    pub fn concurrent(self) -> bool {
        matches!(self, Signals::Piped | Signals::Background)
    }
}

/// The action a `trap` command sets and the signals it sets it for; `None` for another command
/// and for `trap '' PIPE` or `trap - INT`, which set no action.
fn trap_action(words: &[String]) -> Option<(&str, &[String])> {
    let (first, rest) = words.split_first()?;
    if first != "trap" {
        return None;
    }
    let rest = match rest {
        [dashes, after @ ..] if dashes == "--" => after,
        _ => rest,
    };
    let (action, signals) = rest.split_first()?;
    (!action.is_empty() && !action.starts_with('-')).then_some((action.as_str(), signals))
}

/// What a script's `trap ACTION TERM` does to the commands it runs. POSIX has a shell run a
/// trap only once the foreground command it waits for has ended, and has a trapped signal
/// interrupt `wait`: so a trap passes SIGTERM on only to a command in the background, and a
/// script that waits for it once ends as soon as its trap has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TermTrap {
    /// The action signals other processes (`kill …`).
    forwards: bool,
    /// The script waits again once a trapped signal interrupted its `wait`: `wait` in the
    /// action, a second `wait`, or one in a loop.
    waits_again: bool,
}

impl TermTrap {
    /// The `TERM` trap `commands` set, if any; `functions` are the script's, which an action
    /// may call.
    fn read(commands: &[Command], functions: &HashMap<String, Body>) -> Option<Self> {
        let action = commands.iter().find_map(|command| {
            let (action, signals) = trap_action(&command.words)?;
            signals
                .iter()
                .any(|w| matches!(w.as_str(), "TERM" | "SIGTERM" | "15"))
                .then_some(action)
        })?;
        let mut words: Vec<&str> = action
            .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')'))
            .filter(|w| !w.is_empty())
            .collect();
        // `trap on_term TERM`: the words of the function it calls.
        if let Some(body) = words.first().and_then(|name| functions.get(*name)) {
            words = body
                .commands
                .iter()
                .filter_map(|command| command.words.first().map(String::as_str))
                .collect();
        }
        let waits = commands
            .iter()
            .filter(|command| command.words.first().is_some_and(|w| w == "wait"));
        Some(TermTrap {
            forwards: words.iter().any(|w| matches!(*w, "kill" | "pkill")),
            waits_again: words.contains(&"wait")
                || waits.clone().count() > 1
                || waits.clone().any(|command| command.in_loop),
        })
    }

    /// How signals reach a command the script runs as `signals` says, under this trap.
    fn applied_to(self, signals: Signals) -> Signals {
        match signals {
            Signals::Background if !self.waits_again => Signals::EndsFirst,
            Signals::Background if self.forwards => Signals::Reach,
            Signals::Background | Signals::Piped | Signals::Waited => {
                Signals::ReachIfGroupSignalled
            }
            other => other,
        }
    }
}

/// Splits `script` into simple commands; `lookup` resolves `$NAME` (unknown names stay literal).
pub fn parse(
    script: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<SimpleCommand>, ShellError> {
    Ok(commands(script, lookup)?
        .into_iter()
        .map(|command| command.words)
        .collect())
}

/// Like [`parse`], telling each command's condition.
pub fn commands(
    script: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Command>, ShellError> {
    commands_with_args(script, None, lookup, &|_| false)
}

/// Like [`commands`], for a script run as `sh -c SCRIPT NAME ARGS…`: `positional` holds
/// `NAME ARGS…` (`$0`, `$1`…), which `$N` and `"$@"` expand to. `unset` tells the variables
/// known to be unset when the script starts, whose `${NAME:-default}` is the default.
pub fn commands_with_args(
    script: &str,
    positional: Option<&[String]>,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &dyn Fn(&str) -> bool,
) -> Result<Vec<Command>, ShellError> {
    let chars: Vec<char> = script.chars().collect();
    let mut lexer = Lexer {
        last_close_brace: chars.iter().rposition(|&c| c == '}'),
        chars,
        pos: 0,
        lookup,
        unset,
        positional,
        assigned: HashMap::new(),
        heredocs: Vec::new(),
        pending: VecDeque::new(),
        splitting: false,
        in_test: false,
        command_start: true,
        expansion_budget: Budget::default(),
        redirected: false,
        line_break: false,
    };
    let mut splitter = Splitter {
        copy_budget: Budget::default(),
        ..Splitter::default()
    };
    while let Some(token) = lexer.next_token()? {
        match token {
            Token::Word(word) => splitter.current.push(word),
            Token::Separator(separator) => {
                splitter.redirected = std::mem::take(&mut lexer.redirected);
                if let Some(command) = splitter.finish(separator) {
                    lexer.assign(command);
                }
                splitter.after_separator(separator, lexer.line_break);
            }
        }
    }
    splitter.redirected = lexer.redirected;
    splitter.finish(Separator::List);
    // `trap 'kill -TERM $PID' TERM; sidekiq & PID=$!; wait $PID; wait $PID`: the script hands
    // SIGTERM on to what it started, and outlives it.
    let term_trap = TermTrap::read(&splitter.commands, &splitter.functions);
    // bash keeps its child to run a trap (`trap cleanup EXIT`) when it ends; `trap '' PIPE`
    // and `trap - INT` set no action.
    let traps = splitter
        .commands
        .iter()
        .any(|command| trap_action(&command.words).is_some());
    if let Some(trap) = term_trap {
        for command in &mut splitter.commands {
            command.signals = trap.applied_to(command.signals);
        }
    } else if let Some(last) = splitter.last_at_top
        && last + 1 == splitter.commands.len()
        && !traps
        && ends_at_its_last_command(script)
    {
        splitter.commands[last].signals = Signals::ReachIfShellExecsLast;
    }
    Ok(splitter.commands)
}

/// Whether nothing follows the script's last line of commands but blanks and one line break:
/// bash runs its last command in its own place only when that command ends the input (a comment
/// line or an empty line after it is more input).
fn ends_at_its_last_command(script: &str) -> bool {
    let script = script.strip_suffix('\n').unwrap_or(script);
    let last_line = script.rsplit('\n').next().unwrap_or_default().trim();
    !last_line.is_empty() && !last_line.starts_with('#')
}

/// Shell words that start a compound command or negate one, and come before the real command.
const KEYWORDS: &[&str] = &[
    "!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until",
];

/// Cuts the token stream into commands, following the conditions they run under.
#[derive(Default)]
struct Splitter {
    commands: Vec<Command>,
    current: SimpleCommand,
    /// Open `if` constructs.
    ifs: usize,
    /// Open `case` constructs.
    cases: usize,
    /// Reading `case` patterns: the words up to `)` choose a branch, they run nothing.
    pattern: bool,
    /// The next command is the right operand of `||`: it runs only if the left one failed.
    or_operand: bool,
    /// This `&&` list started with a test (`[ "$ROLE" = worker ] && …`).
    after_test: bool,
    /// A conditional `exec` came before: what follows runs only if it did not.
    after_conditional_end: bool,
    /// The open `{ … }` and `( … )` groups.
    groups: Groups,
    /// A `name()` was just read: the group that follows is that function's body, run when
    /// called.
    function: Option<String>,
    /// The command before the last separator was `name` and the separator `(`.
    open_after_name: Option<String>,
    /// The commands of each function's body, read where it is defined, with the conditions
    /// they run under within the body: a call runs them.
    functions: HashMap<String, Body>,
    /// An unconditional `exec COMMAND` or `exit` came before: nothing after it runs.
    ended: bool,
    /// The current command is the right operand of `&&` or `||`.
    chained: bool,
    /// Open `while`, `until` and `for` loops.
    loops: usize,
    /// The last separator was `|`: the current command is part of a pipeline.
    after_pipe: bool,
    /// What calls of functions may still copy of their bodies, in characters.
    copy_budget: Budget,
    /// The last command pushed, when it ran at the top of the script, neither piped nor under
    /// `exec`: if nothing follows, the shell may run it in place of itself.
    last_at_top: Option<usize>,
    /// `;` or `&` that ended a command on the current line.
    lists_on_line: usize,
    /// A `&` ended a command on the current line.
    background_on_line: bool,
    /// The current command has a redirection.
    redirected: bool,
}

impl Splitter {
    fn conditional(&self) -> bool {
        self.ifs > 0
            || self.cases > 0
            || self.or_operand
            || self.after_test
            || self.after_conditional_end
            || self.groups.guarded_or_body > 0
    }

    /// Like [`Splitter::conditional`], within the body of the function being read: its being a
    /// function body is no condition where it is called.
    fn conditional_in_body(&self) -> bool {
        self.ifs > 0
            || self.cases > 0
            || self.or_operand
            || self.after_test
            || self.groups.guarded_or_ended > 0
    }

    /// Ends the current command at `separator`; returns it when it is one the script runs.
    fn finish(&mut self, separator: Separator) -> Option<&Command> {
        if self.pattern {
            self.finish_pattern(separator);
            return None;
        }
        // `function NAME() …` reads as `NAME() …`; `function NAME { …` opens a function body.
        if self.current.first().is_some_and(|w| w == "function") {
            self.current.remove(0);
            if self.current.get(1).is_some_and(|w| w == "{") {
                self.function = Some(self.current.remove(0));
            }
        }
        let skip = self
            .current
            .iter()
            .take_while(|word| KEYWORDS.contains(&word.as_str()))
            .count();
        let mut negated = false;
        for keyword in self.current.drain(..skip).collect::<Vec<_>>() {
            match keyword.as_str() {
                "!" => negated = true,
                "if" => self.ifs += 1,
                "fi" => self.ifs = self.ifs.saturating_sub(1),
                "while" | "until" => self.loops += 1,
                "done" => self.loops = self.loops.saturating_sub(1),
                "{" => self.open_group(),
                "}" => self.close_group(),
                _ => {}
            }
        }
        let words = std::mem::take(&mut self.current);
        // `RAILS_ENV=production exec sidekiq` execs too: assignments before a command word
        // only set its environment.
        let assignments = words.iter().take_while(|w| is_assignment(w)).count();
        let first = words
            .get(assignments)
            .or_else(|| words.first())
            .map(String::as_str);
        let is_test = matches!(first, Some("[" | "[[" | "test"));
        // `exec` under a condition hands the script to another program in that case (the
        // dispatch of a shared entrypoint); a conditional `exit` is usually a bail-out on error.
        let hands_over = first == Some("exec");
        let empty = words.is_empty();
        // `name(`: a function definition, not a command.
        let defines_function = words.len() == 1 && matches!(separator, Separator::Open);
        // `exec` alone only redirects (its redirections are dropped); `exec puma` replaces the
        // shell, and `exit` ends it.
        let execs = hands_over && words.len() > assignments + 1;
        let ends_script = execs || first == Some("exit");
        let defined = defines_function.then(|| words[0].clone());
        let mut pushed = None;
        match first {
            _ if defines_function || self.ended => {}
            // `case WORD in PATTERN)`: neither is a command.
            Some("case") => {
                self.cases += 1;
                self.pattern = !matches!(separator, Separator::Close);
            }
            Some("esac") => self.cases = self.cases.saturating_sub(1),
            // `for NAME in WORDS`: the loop's header, no command.
            Some("for") => self.loops += 1,
            Some(_) => {
                let conditional = self.conditional();
                let in_loop = self.loops > 0;
                let background = matches!(separator, Separator::Background);
                let piped = self.after_pipe || matches!(separator, Separator::Pipe);
                let in_function = self.groups.defining();
                if in_function {
                    let in_body = self.conditional_in_body();
                    self.groups.add_to_body(Command {
                        words: words.clone(),
                        conditional: in_body,
                        in_loop,
                        signals: Signals::of(piped, background, execs),
                    });
                    // `[ "$ROLE" = web ] && exec puma` in a body: the rest of the body runs
                    // only if it did not.
                    if in_body && hands_over {
                        self.groups.end_body_conditionally();
                    }
                }
                // Calls in bodies are not followed (a function may call itself), nor past a
                // bound: thousands of calls of a long body must not multiply it.
                let call = (!in_function && self.commands.len() < MAX_COMMANDS)
                    .then(|| self.functions.get(words[0].as_str()))
                    .flatten()
                    .filter(|body| self.copy_budget.spend(body.size))
                    .map(|body| body.commands.clone());
                let signals = Signals::of(piped, background, execs);
                let at_top = signals == Signals::Waited
                    && !in_function
                    && self.groups.is_empty()
                    && self.loops == 0
                    && self.ifs == 0
                    && self.cases == 0
                    && matches!(separator, Separator::List)
                    && self.bash_may_exec(&words, negated);
                self.commands.push(Command {
                    words,
                    conditional,
                    in_loop,
                    signals,
                });
                pushed = Some(self.commands.len() - 1);
                self.last_at_top = pushed.filter(|_| at_top);
                // A call runs the body, under the call's conditions as well as its own; the
                // shell stays the caller of what runs in a function.
                for command in call.into_iter().flatten() {
                    let signals = match (piped, background) {
                        (_, true) => Signals::Background,
                        (true, false) => Signals::Piped,
                        (false, false) => command.signals,
                    };
                    self.commands.push(Command {
                        words: command.words,
                        conditional: command.conditional || conditional,
                        in_loop: command.in_loop || in_loop,
                        signals,
                    });
                    self.last_at_top = None;
                }
                // An `exec` in a function body ends the script only where it is called.
                self.after_conditional_end |= conditional && hands_over && !in_function;
                // Only a command of its own ends the script: not one of a pipeline or an
                // `&&`/`||` list (its left side decides), not one in the background, not one in
                // a group (a subshell, or a body run elsewhere), not one in a loop.
                self.ended |= ends_script
                    && !conditional
                    && !self.chained
                    && self.groups.is_empty()
                    && self.loops == 0
                    && matches!(separator, Separator::List);
            }
            // An empty command: a line break after `&&` or `||` continues the list.
            None if matches!(separator, Separator::List) => return None,
            None => {}
        }
        self.chained = matches!(separator, Separator::And | Separator::Or);
        self.after_pipe = matches!(separator, Separator::Pipe);
        match separator {
            Separator::And => {
                self.after_test |= is_test;
                self.or_operand = false;
            }
            Separator::Or => {
                self.or_operand = true;
                self.after_test = false;
            }
            Separator::List | Separator::Background => self.end_list(),
            Separator::CaseEnd => {
                self.end_list();
                self.pattern = self.cases > 0;
            }
            Separator::Open => {
                self.open_after_name = defined;
                self.open_group();
            }
            Separator::Close => {
                self.close_group();
                // `name()`: its body, the group that follows, runs only when called.
                self.function = std::mem::take(&mut self.open_after_name).filter(|_| empty);
            }
            Separator::Pipe => {}
        }
        pushed.map(|at| &self.commands[at])
    }

    /// Between `in` or `;;` and `)`: the words are patterns, or `esac`.
    fn finish_pattern(&mut self, separator: Separator) {
        let words = std::mem::take(&mut self.current);
        if words.first().map(String::as_str) == Some("esac") {
            self.pattern = false;
            self.cases = self.cases.saturating_sub(1);
        } else if matches!(separator, Separator::Close) {
            self.pattern = false;
        }
    }

    fn open_group(&mut self) {
        let group = Group {
            guarded: self.conditional(),
            ended_conditionally: false,
            function: std::mem::take(&mut self.function),
            body: Body::default(),
        };
        self.groups.push(group);
        self.or_operand = false;
        self.after_test = false;
    }

    /// Closes the innermost group; a function's body, read whole, is what calls of it run.
    fn close_group(&mut self) {
        if let Some(Group {
            function: Some(name),
            body,
            ..
        }) = self.groups.pop()
        {
            self.functions.entry(name).or_default().extend(body);
        }
    }

    fn end_list(&mut self) {
        self.or_operand = false;
        self.after_test = false;
    }

    /// Whether bash 5.2 would run `words`, the command being read, in its own place if it
    /// ended the script (checked with `unshare --pid`): not with a redirection, not negated
    /// (`!`) or timed, not after a `&` on its line, and as the right side of `&&` only when the
    /// `&&` list starts its line. bash reads a `-c` script line by line.
    fn bash_may_exec(&self, words: &[String], negated: bool) -> bool {
        let kept = self.redirected
            || negated
            || words.first().is_some_and(|w| w == "time")
            || self.background_on_line
            || (self.chained && self.lists_on_line > 0);
        !kept
    }

    /// Follows what starts a line, after `separator` ended a command (or an empty one).
    fn after_separator(&mut self, separator: Separator, line_break: bool) {
        // A line break right after `&&`, `||` or `|` continues the list on the next line.
        if self.chained || self.after_pipe {
            return;
        }
        match separator {
            _ if line_break => {
                self.lists_on_line = 0;
                self.background_on_line = false;
            }
            Separator::List => self.lists_on_line += 1,
            Separator::Background => {
                self.lists_on_line += 1;
                self.background_on_line = true;
            }
            _ => {}
        }
    }
}

/// An open `{ … }` or `( … )`.
struct Group {
    /// Entered under a condition.
    guarded: bool,
    /// In a function body: a conditional `exec` came before, so what follows in the body runs
    /// only if it did not.
    ended_conditionally: bool,
    /// A function's body: its name.
    function: Option<String>,
    /// A function's body: its commands so far. Kept here, not under the name in
    /// [`Splitter::functions`], until it closes: a name of thousands of characters copied and
    /// hashed for each command of the body made reading quadratic.
    body: Body,
}

/// The open groups, innermost last, with what a command's conditions ask of them kept as it
/// changes: asked of the whole stack for every command, 45,000 nested `{` took 12 s to read.
#[derive(Default)]
struct Groups {
    stack: Vec<Group>,
    /// Open groups entered under a condition or that are function bodies.
    guarded_or_body: usize,
    /// Open groups entered under a condition or ended conditionally.
    guarded_or_ended: usize,
    /// Where in `stack` the open function bodies are.
    bodies: Vec<usize>,
}

impl Groups {
    fn push(&mut self, group: Group) {
        self.guarded_or_body += usize::from(group.guarded || group.function.is_some());
        self.guarded_or_ended += usize::from(group.guarded || group.ended_conditionally);
        if group.function.is_some() {
            self.bodies.push(self.stack.len());
        }
        self.stack.push(group);
    }

    fn pop(&mut self) -> Option<Group> {
        let group = self.stack.pop()?;
        self.guarded_or_body -= usize::from(group.guarded || group.function.is_some());
        self.guarded_or_ended -= usize::from(group.guarded || group.ended_conditionally);
        if group.function.is_some() {
            self.bodies.pop();
        }
        Some(group)
    }

    fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    /// Whether a function's body is being read.
    fn defining(&self) -> bool {
        !self.bodies.is_empty()
    }

    /// Adds `command` to the body of the innermost function being read.
    fn add_to_body(&mut self, command: Command) {
        if let Some(group) = self.bodies.last().and_then(|&at| self.stack.get_mut(at)) {
            group.body.push(command);
        }
    }

    /// Marks the body of the function being read as ended conditionally.
    fn end_body_conditionally(&mut self) {
        let Some(body) = self.bodies.last().and_then(|&at| self.stack.get_mut(at)) else {
            return;
        };
        if !body.ended_conditionally {
            body.ended_conditionally = true;
            self.guarded_or_ended += usize::from(!body.guarded);
        }
    }
}

/// A function's body as read where it is defined, and its size in characters, which every call
/// spends from the copy budget.
#[derive(Default)]
struct Body {
    commands: Vec<Command>,
    size: usize,
}

impl Body {
    fn push(&mut self, command: Command) {
        self.size += command.words.iter().map(String::len).sum::<usize>();
        self.commands.push(command);
    }

    /// A function defined again adds to what calls of it run.
    fn extend(&mut self, more: Body) {
        self.size += more.size;
        self.commands.extend(more.commands);
    }
}

enum Token {
    Word(String),
    Separator(Separator),
}

/// What separates two commands, as far as conditions go.
#[derive(Clone, Copy)]
enum Separator {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `;`, a newline: the next command runs whatever came before.
    List,
    /// `&`: as `List`, the command before running in the background.
    Background,
    /// `;;`, the end of a `case` branch.
    CaseEnd,
    /// `|`
    Pipe,
    /// `(`
    Open,
    /// `)`
    Close,
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    /// Where the script's last `}` is: a `${` after it has no end, which is known without
    /// searching the rest of the script for each one (45,000 of them took 7 s).
    last_close_brace: Option<usize>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: &'a dyn Fn(&str) -> bool,
    /// `$0`, `$1`… when the script's arguments are known.
    positional: Option<&'a [String]>,
    /// What the script assigned so far; `None` when the value is unknown here (assigned under
    /// a condition, or from something only the run knows).
    assigned: HashMap<String, Option<String>>,
    /// Here-documents opened on the current line: `(delimiter, strip leading tabs)`.
    heredocs: Vec<(String, bool)>,
    /// Words of an expanded `"$@"` or of a split unquoted expansion not yet returned.
    pending: VecDeque<String>,
    /// Expanding outside quotes: the value's blanks split it into words.
    splitting: bool,
    /// Inside `[[ … ]]`, where `(`, `|`, `<`… belong to the test (`=~ ^(web|worker)$`).
    in_test: bool,
    /// The next word starts a command (after a separator or a keyword such as `if`).
    command_start: bool,
    /// Characters expansions may still add to this script's words.
    expansion_budget: Budget,
    /// The command being read has a redirection (`2>&1`).
    redirected: bool,
    /// The last separator returned was a line break.
    line_break: bool,
}

/// Nesting limit for `sh -c "bash -c '…'"` in a command line or a hook: real manifests use one
/// level, rarely two.
pub const MAX_SHELL_DEPTH: usize = 4;

/// How many commands a script may add by calling its functions.
const MAX_COMMANDS: usize = 10_000;

/// The longest value a variable is expanded to or assigned: timeouts, sleeps and commands are
/// short, and `A=$A$A` repeated must not double a word into gigabytes (a 437-byte manifest
/// took 26 s and 424 MB before). A longer value is unknown, like one set at run time.
pub const MAX_EXPANSION: usize = 4096;

/// What expansions may add to one script's words (or one container's command line and env) in
/// all: thousands of `$A` of [`MAX_EXPANSION`] characters each read as written once it is spent.
pub const EXPANSION_BUDGET: usize = 1 << 20;

/// Characters that expansions (or copies of function bodies) may still add: starts at
/// [`EXPANSION_BUDGET`], and is spent by whoever adds them.
#[derive(Debug)]
pub struct Budget(std::cell::Cell<usize>);

impl Default for Budget {
    fn default() -> Self {
        Self(std::cell::Cell::new(EXPANSION_BUDGET))
    }
}

impl Budget {
    /// Spends `len` characters if that many are left; `false` (nothing spent) otherwise.
    pub fn spend(&self, len: usize) -> bool {
        let left = self.0.get();
        let fits = len <= left;
        if fits {
            self.0.set(left - len);
        }
        fits
    }

    /// Spends a variable's value if it may be expanded: at most [`MAX_EXPANSION`] characters,
    /// and within what is left.
    pub fn expand(&self, value: &str) -> bool {
        value.len() <= MAX_EXPANSION && self.spend(value.len())
    }
}

impl Lexer<'_> {
    /// Records the assignments of `command` when that is all it does (`T=300`, `export T=300`):
    /// later `$T` expands to the script's value, not the container's.
    ///
    /// An assignment under a condition leaves two possible values: the known one before it
    /// and the one it assigns. For numbers (what this module's callers read: timeouts,
    /// sleeps) the larger is kept, the safe side of a grace period; otherwise the one before
    /// (`[ -z "$T" ] && T=25` is a default for an unset T). `set -- …` and `shift` make the
    /// positional parameters unknown.
    fn assign(&mut self, command: &Command) {
        let first = command.words.first().map(String::as_str);
        // `set -- a b`, `set a b`; not `set -e` or `set -o pipefail`.
        let mut options = command.words.iter().skip(1);
        let mut sets_arguments = false;
        while let Some(word) = options.next() {
            // `-o NAME`, also clustered: `set -euo pipefail`.
            if word != "--" && word.starts_with(['-', '+']) && word[1..].contains('o') {
                options.next();
            } else if word == "--" || !word.starts_with(['-', '+']) {
                sets_arguments = true;
                break;
            }
        }
        if first == Some("shift") || (first == Some("set") && sets_arguments) {
            self.positional = None;
            return;
        }
        let words = match command.words.split_first() {
            Some((first, rest))
                if matches!(
                    first.as_str(),
                    "export" | "readonly" | "local" | "declare" | "typeset"
                ) =>
            {
                // `declare -i T=60`: its options come first.
                let options = rest
                    .iter()
                    .take_while(|w| w.starts_with(['-', '+']))
                    .count();
                &rest[options..]
            }
            _ => &command.words[..],
        };
        if words.is_empty() || !words.iter().all(|word| is_assignment(word)) {
            return;
        }
        for word in words {
            if let Some((name, value)) = word.split_once('=') {
                let known = (!value.contains(['$', '`']) && value.len() <= MAX_EXPANSION)
                    .then(|| value.to_owned());
                let value = if command.conditional {
                    // Unset before: `[ -z "$T" ] && T=60` sets it.
                    let before = self
                        .value(name)
                        .or_else(|| self.is_unset(name).then(String::new));
                    match (before, known) {
                        (Some(before), Some(new)) if before.is_empty() => Some(new),
                        (Some(before), Some(new)) => {
                            match (before.parse::<u64>(), new.parse::<u64>()) {
                                (Ok(b), Ok(n)) if n > b => Some(new),
                                _ => Some(before),
                            }
                        }
                        // Unknown before: it stays unknown, and the caller's value is no more
                        // certain than the assigned one.
                        _ => None,
                    }
                } else {
                    known
                };
                self.assigned.insert(name.to_owned(), value);
            }
        }
    }

    /// `"$@"` or `$@` as a whole word, with known arguments: one word per argument.
    fn all_arguments(&mut self) -> Option<()> {
        let args = self.positional?;
        let rest = &self.chars[self.pos..];
        let len = if rest.starts_with(&['"', '$', '@', '"']) {
            4
        } else if rest.starts_with(&['$', '@']) {
            2
        } else {
            return None;
        };
        if rest.get(len).is_some_and(|c| !is_break(*c)) {
            return None;
        }
        let words = &args[1.min(args.len())..];
        if !self
            .expansion_budget
            .spend(words.iter().map(String::len).sum())
        {
            return None;
        }
        self.pos += len;
        self.pending.extend(words.iter().cloned());
        Some(())
    }

    /// Skips the bodies of the here-documents opened on the line that just ended.
    fn skip_heredocs(&mut self) {
        for (delimiter, strip_tabs) in std::mem::take(&mut self.heredocs) {
            while self.pos < self.chars.len() {
                let end = self.chars[self.pos..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(self.chars.len(), |at| self.pos + at);
                let line: String = self.chars[self.pos..end].iter().collect();
                self.pos = (end + 1).min(self.chars.len());
                let line = line.strip_suffix('\r').unwrap_or(&line);
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if line == delimiter {
                    break;
                }
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn next_token(&mut self) -> Result<Option<Token>, ShellError> {
        let token = self.token()?;
        self.command_start = match &token {
            Some(Token::Word(word)) => KEYWORDS.contains(&word.as_str()),
            _ => true,
        };
        Ok(token)
    }

    fn token(&mut self) -> Result<Option<Token>, ShellError> {
        loop {
            if let Some(word) = self.pending.pop_front() {
                return Ok(Some(Token::Word(word)));
            }
            match self.peek() {
                None => return Ok(None),
                Some('\n') if !self.heredocs.is_empty() => {
                    self.pos += 1;
                    self.skip_heredocs();
                    self.line_break = true;
                    return Ok(Some(Token::Separator(Separator::List)));
                }
                Some(' ' | '\t' | '\r') => self.pos += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                Some('#') => self.skip_comment(),
                Some(c) if self.in_test && matches!(c, '(' | ')' | '|' | '<' | '>' | '&') => {
                    let start = self.pos;
                    while self
                        .peek()
                        .is_some_and(|c| !matches!(c, ' ' | '\t' | '\n' | ';'))
                    {
                        self.pos += 1;
                    }
                    return Ok(Some(Token::Word(
                        self.chars[start..self.pos].iter().collect(),
                    )));
                }
                // bash's `&>FILE` and `&>>FILE` send both outputs to FILE: no background.
                Some('&') if self.peek_at(1) == Some('>') => {
                    self.pos += 1;
                    self.skip_redirection()?;
                }
                Some(c @ ('&' | '|')) if self.peek_at(1) == Some(c) => {
                    self.pos += 2;
                    let separator = if c == '&' {
                        Separator::And
                    } else {
                        Separator::Or
                    };
                    self.line_break = false;
                    return Ok(Some(Token::Separator(separator)));
                }
                Some(';') if self.peek_at(1) == Some(';') => {
                    self.pos += 2;
                    return Ok(Some(Token::Separator(Separator::CaseEnd)));
                }
                // `(( … ))` arithmetic: one word, so that its `<<` opens no here-document.
                Some('(') if self.peek_at(1) == Some('(') => {
                    let mut word = String::new();
                    let start = self.pos;
                    self.balanced(&mut word, start, '(', ')');
                    return Ok(Some(Token::Word(word)));
                }
                Some(c @ (';' | '\n' | '&' | '|' | '(' | ')')) => {
                    self.pos += 1;
                    // A `[[` that never closed (`echo [[`) ends with its command.
                    self.in_test = false;
                    let separator = match c {
                        '|' => Separator::Pipe,
                        '(' => Separator::Open,
                        ')' => Separator::Close,
                        '&' => Separator::Background,
                        _ => Separator::List,
                    };
                    self.line_break = c == '\n';
                    return Ok(Some(Token::Separator(separator)));
                }
                Some('<' | '>') => self.skip_redirection()?,
                Some(_) if self.fd_prefix() > 0 => {
                    self.pos += self.fd_prefix();
                    self.skip_redirection()?;
                }
                Some('"' | '$') if self.all_arguments().is_some() => {}
                Some(_) => {
                    let start = self.pos;
                    let word = self.word()?;
                    // Only an unquoted `[[` that starts a command opens a test.
                    let raw =
                        |text: &str| self.chars[start..self.pos].iter().copied().eq(text.chars());
                    if raw("[[") && self.command_start {
                        self.in_test = true;
                    } else if raw("]]") {
                        self.in_test = false;
                    }
                    if !word.contains(FIELD_BREAK) {
                        return Ok(Some(Token::Word(word)));
                    }
                    // An unquoted expansion with blanks: one word per field.
                    self.pending.extend(
                        word.split(FIELD_BREAK)
                            .filter(|field| !field.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
        }
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// The length of a file-descriptor prefix of a redirection here: digits (`2>&1`,
    /// `200>/tmp/lock`) or bash's `{name}` (`exec {fd}>file`) directly followed by `<` or `>`;
    /// 0 when there is none.
    fn fd_prefix(&self) -> usize {
        let rest = &self.chars[self.pos..];
        let len = match rest.first() {
            Some(c) if c.is_ascii_digit() => rest.iter().take_while(|c| c.is_ascii_digit()).count(),
            // `{NAME}`: only the name is read, not the script up to its next `}`, which for
            // every `{` of `{ { { …` made reading quadratic.
            Some('{') => {
                let name = rest[1..]
                    .iter()
                    .take_while(|c| **c == '_' || c.is_ascii_alphanumeric())
                    .count();
                if name == 0 || rest.get(name + 1) != Some(&'}') {
                    return 0;
                }
                name + 2
            }
            _ => return 0,
        };
        if matches!(rest.get(len), Some('<' | '>')) {
            len
        } else {
            0
        }
    }

    /// Consumes `>`, `>>`, `>&N`, `<`, `<<`… and the word that is its target; a `<<WORD` or
    /// `<<-WORD` opens a here-document, whose body follows the line.
    fn skip_redirection(&mut self) -> Result<(), ShellError> {
        self.redirected = true;
        let start = self.pos;
        while matches!(self.peek(), Some('<' | '>')) {
            self.pos += 1;
        }
        let heredoc = self.chars[start..self.pos] == ['<', '<'];
        let strip_tabs = heredoc && self.peek() == Some('-');
        if self.peek() == Some('&') || strip_tabs {
            self.pos += 1;
        }
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(c) if !is_break(c)) {
            let target = self.word()?;
            if heredoc {
                self.heredocs.push((target, strip_tabs));
            }
        }
        Ok(())
    }

    fn word(&mut self) -> Result<String, ShellError> {
        let mut word = String::new();
        let mut assignment = AssignmentPrefix::default();
        while let Some(c) = self.peek() {
            match c {
                c if is_break(c) => break,
                '\'' => {
                    self.pos += 1;
                    self.single_quoted(&mut word)?;
                }
                '"' => {
                    self.pos += 1;
                    self.double_quoted(&mut word)?;
                }
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') => self.pos += 1,
                        Some(escaped) => {
                            word.push(escaped);
                            self.pos += 1;
                        }
                        None => word.push('\\'),
                    }
                }
                '$' => {
                    // The value of an assignment (`OPTS=$BASE`) is not split.
                    self.splitting = !assignment.of(&word);
                    self.dollar(&mut word);
                    self.splitting = false;
                }
                '`' => self.backquoted(&mut word),
                c => {
                    word.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(word)
    }

    /// Appends an expansion's value: outside quotes its blanks separate fields.
    fn push_value(&self, word: &mut String, value: &str) {
        if self.splitting {
            word.extend(value.chars().map(|c| {
                if matches!(c, ' ' | '\t' | '\n') {
                    FIELD_BREAK
                } else {
                    c
                }
            }));
        } else {
            word.push_str(value);
        }
    }

    fn single_quoted(&mut self, word: &mut String) -> Result<(), ShellError> {
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedQuote("single")),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) => {
                    word.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self, word: &mut String) -> Result<(), ShellError> {
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedQuote("double")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('\\') if matches!(self.peek_at(1), Some('"' | '\\' | '$' | '`')) => {
                    word.push(self.chars[self.pos + 1]);
                    self.pos += 2;
                }
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                Some('$') => self.dollar(word),
                Some('`') => self.backquoted(word),
                Some(c) => {
                    word.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `$NAME`, `${NAME}` expand when known; `$(…)` and anything else stay literal.
    fn dollar(&mut self, word: &mut String) {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some('{') => {
                let close = self
                    .last_close_brace
                    .filter(|&last| last > self.pos)
                    .and_then(|_| self.chars[self.pos..].iter().position(|&c| c == '}'));
                let Some(close) = close else {
                    word.push('$');
                    return;
                };
                let inner: String = self.chars[self.pos + 1..self.pos + close].iter().collect();
                self.pos += close + 1;
                self.expand_braced(word, &inner, start);
            }
            Some('(') => self.balanced(word, start, '(', ')'),
            Some(c) if c.is_ascii_digit() => {
                self.pos += 1;
                self.expand(word, &c.to_string(), start);
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(c) = self
                    .peek()
                    .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
                {
                    name.push(c);
                    self.pos += 1;
                }
                self.expand(word, &name, start);
            }
            _ => word.push('$'),
        }
    }

    fn expand(&self, word: &mut String, name: &str, start: usize) {
        match self
            .value(name)
            .filter(|value| self.expansion_budget.expand(value))
        {
            Some(value) => self.push_value(word, &value),
            None => word.extend(&self.chars[start..self.pos]),
        }
    }

    /// `${NAME}`, and `${NAME:-word}`/`${NAME-word}` (also with `=`): NAME's value when known,
    /// the default where it is known to be empty (with `:`). An unknown NAME, a default that
    /// expands something, and other operators (`:+`, `#`, `%`…) stay as written.
    fn expand_braced(&self, word: &mut String, inner: &str, start: usize) {
        let name_len = inner
            .find(|c: char| c != '_' && !c.is_ascii_alphanumeric())
            .unwrap_or(inner.len());
        let (name, operation) = inner.split_at(name_len);
        let (colon, rest) = match operation.strip_prefix(':') {
            Some(rest) => (true, rest),
            None => (false, operation),
        };
        let default = rest.strip_prefix(['-', '=']);
        let value = match (operation, default) {
            // `${T:?message}` fails the script when T is unset: otherwise it is T.
            ("", _) => self.value(name),
            (_, None) if rest.starts_with('?') => self.value(name),
            (_, Some(default)) if !default.contains(['$', '`']) => match self.value(name) {
                Some(value) if colon && value.is_empty() => Some(default.to_owned()),
                Some(value) => Some(value),
                None => self.is_unset(name).then(|| default.to_owned()),
            },
            _ => None,
        };
        match value.filter(|value| self.expansion_budget.expand(value)) {
            Some(value) => self.push_value(word, &value),
            None => word.extend(&self.chars[start..self.pos]),
        }
    }

    /// Whether `name` is known to be unset here: the script never assigned it, and nothing
    /// outside it can set it.
    fn is_unset(&self, name: &str) -> bool {
        !self.assigned.contains_key(name) && (self.unset)(name)
    }

    /// What `$name` holds here, when known: the script's own assignment, else the caller's.
    fn value(&self, name: &str) -> Option<String> {
        if let Some(digit) = name.parse::<usize>().ok().filter(|_| name.len() == 1) {
            // Past the last argument, `$N` is empty.
            return self
                .positional
                .map(|args| args.get(digit).cloned().unwrap_or_default());
        }
        match self.assigned.get(name) {
            Some(value) => value.clone(),
            None => (self.lookup)(name),
        }
    }

    /// Copies a `$(…)` substitution verbatim, nesting included.
    fn balanced(&mut self, word: &mut String, start: usize, open: char, close: char) {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
        }
        word.extend(&self.chars[start..self.pos]);
    }

    fn backquoted(&mut self, word: &mut String) {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '`' {
                break;
            }
        }
        word.extend(&self.chars[start..self.pos]);
    }
}

/// Whether the word being read is an assignment (`NAME=…`), as it grows: each character is
/// looked at once, where searching the whole word at each `$` of `${${${…` was quadratic.
#[derive(Default)]
struct AssignmentPrefix {
    /// How much of the word was searched for its first `=`.
    searched: usize,
    /// Once the first `=` is found: whether a name precedes it.
    found: Option<bool>,
}

impl AssignmentPrefix {
    fn of(&mut self, word: &str) -> bool {
        if self.found.is_none() {
            let from = if word.is_char_boundary(self.searched) {
                self.searched
            } else {
                0
            };
            if let Some(at) = word[from..].find('=') {
                self.found = Some(is_name(&word[..from + at]));
            }
            self.searched = word.len();
        }
        self.found == Some(true)
    }
}

/// Marks where an unquoted expansion's blanks split a word (a control character no manifest's
/// command line holds).
const FIELD_BREAK: char = '\u{1f}';

fn is_break(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

/// Splits a command line into its simple commands when it is a shell invocation
/// (`sh -c SCRIPT`, `bash -lc SCRIPT`, `/bin/bash -e -o pipefail -c SCRIPT`), returning the script.
pub fn script_of<S: AsRef<str>>(words: &[S]) -> Option<&str> {
    script_and_args(words).map(|(script, _)| script)
}

/// Like [`script_of`], also returning the words after the script: `$0`, `$1`… of the script.
pub fn script_and_args<S: AsRef<str>>(words: &[S]) -> Option<(&str, &[S])> {
    let (shell, options) = words.split_first()?;
    if matches!(basename(shell.as_ref()), "su" | "runuser") {
        return user_shell_script(options);
    }
    if !is_shell(shell.as_ref()) {
        return None;
    }
    let mut takes_script = false;
    let mut i = 0;
    while let Some(word) = options.get(i).map(AsRef::as_ref) {
        i += 1;
        if word == "--" {
            break;
        }
        if word.starts_with("--") {
            continue;
        }
        if let Some(flags) = word.strip_prefix(['-', '+']) {
            takes_script |= flags.contains('c');
            // `-o pipefail`, also bundled: `-eo pipefail`, `-euxo pipefail`.
            if flags.ends_with(['o', 'O']) {
                i += 1;
            }
            continue;
        }
        return takes_script.then(|| (word, &options[i..]));
    }
    let script = options.get(i).filter(|_| takes_script)?;
    Some((script.as_ref(), &options[i + 1..]))
}

/// The script of `su [OPTIONS] USER -c SCRIPT` (or `runuser`), which the user's shell runs;
/// no arguments follow it.
fn user_shell_script<S: AsRef<str>>(options: &[S]) -> Option<(&str, &[S])> {
    let mut words = options.iter().map(AsRef::as_ref);
    while let Some(word) = words.next() {
        match word {
            "-c" | "--command" => return words.next().map(|script| (script, &options[..0])),
            _ if word.starts_with("--command=") => {
                return Some((&word["--command=".len()..], &options[..0]));
            }
            // Options with a value: the shell, the group, the user (runuser -u).
            "-s" | "--shell" | "-g" | "--group" | "-G" | "-u" | "--user" => {
                words.next();
            }
            _ => {}
        }
    }
    None
}

/// Whether `word` names a POSIX-like shell (`sh`, `/bin/bash`, `busybox sh` is not handled).
pub fn is_shell(word: &str) -> bool {
    matches!(
        basename(word),
        "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "mksh"
    )
}

/// The last path component of a command word: `/usr/local/bin/bundle` → `bundle`.
pub fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The command a command line really runs, past the wrappers people put in front of it:
/// `NAME=value` assignments, `exec`, `env …`, `bundle exec`, `ruby`, init shims (`tini --`,
/// `dumb-init`), `nice`/`timeout`/`gosu`-style runners, secret injectors (`op run --`,
/// `chamber exec … --`), tracers (`ddtracerb exec`), and entrypoint scripts (`*.sh`,
/// `*entrypoint*`), which conventionally end with `exec "$@"`.
pub fn skip_wrappers<S: AsRef<str>>(words: &[S]) -> &[S] {
    let mut i = 0;
    while let Some(word) = words.get(i).map(AsRef::as_ref) {
        let name = basename(word);
        i = match name {
            _ if is_assignment(word) => i + 1,
            // `command -v NAME` only looks NAME up.
            "command" if matches!(word_at(words, i + 1), Some("-v" | "-V")) => {
                return &[];
            }
            "exec" => skip_options(words, i + 1, &["-a"]),
            "command" | "nohup" | "time" | "with-contenv" => skip_options(words, i + 1, &[]),
            // `runuser -l app -c SCRIPT` runs a script: [`script_and_args`] reads it.
            "runuser"
                if words[i + 1..].iter().any(|w| {
                    matches!(w.as_ref(), "-c" | "--command") || w.as_ref().starts_with("--command=")
                }) =>
            {
                break;
            }
            "runuser" | "setpriv" => skip_options(words, i + 1, &["-u", "-g", "-G"]),
            "sudo" => skip_options(
                words,
                i + 1,
                &["-u", "-g", "-U", "-C", "-h", "-p", "-r", "-t", "-T", "-D"],
            ),
            // `stdbuf -oL sidekiq`; `-o L` takes its mode apart.
            "stdbuf" => skip_options(words, i + 1, &["-i", "-o", "-e"]),
            "rbenv" if word_at(words, i + 1) == Some("exec") => skip_options(words, i + 2, &[]),
            "s6-setuidgid" => i + 2,
            "doppler" if word_at(words, i + 1) == Some("run") => {
                skip_options(words, i + 2, &["-p", "--project", "-c", "--config"])
            }
            "env" => skip_options(words, i + 1, &["-u", "--unset", "-C", "--chdir", "-S"]),
            "bundle" | "bundler" => {
                // RubyGems' version selector comes first: `bundle _2.4.0_ exec`.
                let at = i + 1 + usize::from(word_at(words, i + 1).is_some_and(is_gem_version));
                if word_at(words, at) != Some("exec") {
                    break;
                }
                skip_options(words, at + 1, &[])
            }
            // Datadog's tracer: `ddtracerb exec sidekiq`.
            "ddtracerb" if word_at(words, i + 1) == Some("exec") => skip_options(words, i + 2, &[]),
            // Secret injectors that run the command after `--`: `op run --env-file=.env --
            // sidekiq`, `chamber exec app -- sidekiq`.
            "op" if word_at(words, i + 1) == Some("run") => {
                past_double_dash(words, i + 2).unwrap_or(words.len())
            }
            "berglas" | "chamber" if word_at(words, i + 1) == Some("exec") => {
                past_double_dash(words, i + 2).unwrap_or(words.len())
            }
            // `aws-vault exec prod -- sidekiq -t 60`. aws-vault takes one profile, so the
            // `--` may be left out, but then it reads every option on the line as its own
            // (`-t 60` is its MFA token): the command runs without them.
            "aws-vault" if word_at(words, i + 1) == Some("exec") => {
                match past_double_dash(words, i + 2) {
                    Some(command) => command,
                    None => return aws_vault_command(words, i + 2),
                }
            }
            // `taskset -c 0,1 sidekiq`, `taskset 0x3 sidekiq`: a CPU list or a mask first.
            "taskset" => {
                let after = skip_options(words, i + 1, &["-c", "--cpu-list"]);
                let listed = words[i + 1..after.min(words.len())].iter().any(|w| {
                    matches!(w.as_ref(), "-c" | "--cpu-list")
                        || w.as_ref().starts_with("--cpu-list=")
                });
                after + usize::from(!listed)
            }
            "ruby" | "jruby" => skip_options(words, i + 1, &["-r", "-I", "-C"]),
            "dumb-init" => i + 1 + crate::dumb_init::Options::parse(&words[i + 1..]).operand,
            "tini" | "tini-static" | "catatonit" => skip_options(words, i + 1, &["-p", "-e"]),
            "nice" | "ionice" | "chpst" => {
                skip_options(words, i + 1, &["-n", "-c", "-u", "-U", "-e"])
            }
            // These take one operand (a duration, a user, a priority) before the command.
            "timeout" | "gosu" | "su-exec" | "chrt" => {
                skip_options(words, i + 1, &["-s", "-k", "--signal", "--kill-after"]) + 1
            }
            _ if name.ends_with(".sh") || name.contains("entrypoint") => i + 1,
            _ => break,
        };
    }
    words.get(i..).unwrap_or(&[])
}

/// The options of `aws-vault exec`, and aws-vault's own, that take a value as the next word.
const AWS_VAULT_VALUED: &[&str] = &[
    "-d",
    "--duration",
    "--region",
    "-t",
    "--mfa-token",
    "--prompt",
    "--backend",
    "--keychain",
    "--secret-service-collection",
    "--pass-dir",
    "--pass-cmd",
    "--pass-prefix",
    "--file-dir",
];

/// The command `aws-vault exec` runs when no `--` ends its options: the words after the profile
/// (at or after `i`, past aws-vault's options) up to the first option, which aws-vault takes for
/// its own wherever it stands, past the command's own wrappers.
fn aws_vault_command<S: AsRef<str>>(words: &[S], i: usize) -> &[S] {
    let command = skip_options(words, i, AWS_VAULT_VALUED) + 1;
    let rest = words.get(command..).unwrap_or(&[]);
    let end = rest
        .iter()
        .position(|w| w.as_ref().starts_with('-'))
        .unwrap_or(rest.len());
    skip_wrappers(&rest[..end])
}

fn word_at<S: AsRef<str>>(words: &[S], i: usize) -> Option<&str> {
    words.get(i).map(AsRef::as_ref)
}

/// `_2.4.0_`: RubyGems' selector of the version of a gem's executable to run.
fn is_gem_version(word: &str) -> bool {
    word.len() > 2
        && word.starts_with('_')
        && word.ends_with('_')
        && word[1..word.len() - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// The index after the first `--` from `i` on, if there is one. Without it, a wrapper that
/// runs what follows `--` runs no command that can be told.
fn past_double_dash<S: AsRef<str>>(words: &[S], i: usize) -> Option<usize> {
    words[i.min(words.len())..]
        .iter()
        .position(|w| w.as_ref() == "--")
        .map(|at| i + at + 1)
}

/// `NAME=value`, as a command prefix.
pub(crate) fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| is_name(name))
}

/// A shell variable name.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Skips options from `i` on (and the values of those in `with_value`), and a closing `--`.
fn skip_options<S: AsRef<str>>(words: &[S], mut i: usize, with_value: &[&str]) -> usize {
    while let Some(word) = words.get(i).map(AsRef::as_ref) {
        if word == "--" {
            return i + 1;
        }
        if !word.starts_with('-') && !is_assignment(word) {
            break;
        }
        i += if with_value.contains(&word) { 2 } else { 1 };
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn commands(script: &str) -> Vec<Vec<String>> {
        parse(script, &none).unwrap()
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn splits_chains_and_removes_quotes() {
        assert_eq!(
            commands(
                "bundle exec rake db:migrate && exec bundle exec sidekiq -q 'critical,2' -t \"60\""
            ),
            vec![
                words(&["bundle", "exec", "rake", "db:migrate"]),
                words(&[
                    "exec",
                    "bundle",
                    "exec",
                    "sidekiq",
                    "-q",
                    "critical,2",
                    "-t",
                    "60"
                ]),
            ]
        );
    }

    #[test]
    fn tells_which_commands_run_under_a_condition() {
        let conditional = |script: &str| -> Vec<(String, bool)> {
            super::commands(script, &none)
                .unwrap()
                .into_iter()
                .map(|c| (c.words.join(" "), c.conditional))
                .collect()
        };
        let owned = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
            list.iter().map(|(w, c)| ((*w).to_owned(), *c)).collect()
        };
        assert_eq!(
            conditional("migrate && exec sidekiq"),
            owned(&[("migrate", false), ("exec sidekiq", false)])
        );
        assert_eq!(
            conditional("if [ -n x ]; then a; elif b; then c; else d; fi; e"),
            owned(&[
                ("[ -n x ]", true),
                ("a", true),
                ("b", true),
                ("c", true),
                ("d", true),
                ("e", false),
            ])
        );
        // Patterns are no commands, whatever their words.
        assert_eq!(
            conditional("case $R in sidekiq|w) a ;;\n  (*) b ;;\nesac\nc"),
            owned(&[("a", true), ("b", true), ("c", false)])
        );
        // `||` guards its right operand; what follows `&&` runs when the list so far succeeded.
        assert_eq!(
            conditional("a || b && c; [ x ] && d && e; f | g"),
            owned(&[
                ("a", false),
                ("b", true),
                ("c", false),
                ("[ x ]", false),
                ("d", true),
                ("e", true),
                ("f", false),
                ("g", false),
            ])
        );
        // A line break after an operator continues the list.
        assert_eq!(
            conditional("[ x ] &&\n  a\nb ||\n  c"),
            owned(&[("[ x ]", false), ("a", true), ("b", false), ("c", true)])
        );
        // A group runs under the condition it is entered with.
        assert_eq!(
            conditional("[ x ] && { a; b; }; c"),
            owned(&[("[ x ]", false), ("a", true), ("b", true), ("c", false)])
        );
        // After a conditional `exec`, the rest runs only if it did not happen; a conditional
        // `exit` is a bail-out and leaves the rest alone.
        assert_eq!(
            conditional("[ x ] && exec a; b; cd /app || exit 1; c"),
            owned(&[
                ("[ x ]", false),
                ("exec a", true),
                ("b", true),
                ("cd /app", true),
                ("exit 1", true),
                ("c", true),
            ])
        );
        assert_eq!(
            conditional("cd /app || exit 1; c"),
            owned(&[("cd /app", false), ("exit 1", true), ("c", false)])
        );
        // A function body runs when called: where it is defined, under a condition; where it
        // is called, under the call's conditions and its own.
        assert_eq!(
            conditional("worker() { exec sidekiq; }; worker"),
            owned(&[
                ("exec sidekiq", true),
                ("worker", false),
                ("exec sidekiq", false)
            ])
        );
        assert_eq!(
            conditional(
                "function start { migrate && exec sidekiq -t 60; }\n[ \"$R\" = w ] && start"
            ),
            owned(&[
                ("migrate", true),
                ("exec sidekiq -t 60", true),
                ("[ $R = w ]", false),
                ("start", true),
                ("migrate", true),
                ("exec sidekiq -t 60", true),
            ])
        );
        assert_eq!(
            conditional("start() {\n  if [ -f x ]; then a; fi\n  exec sidekiq\n}\nstart"),
            owned(&[
                ("[ -f x ]", true),
                ("a", true),
                ("exec sidekiq", true),
                ("start", false),
                ("[ -f x ]", true),
                ("a", true),
                ("exec sidekiq", false),
            ])
        );
        // Never called: it never runs.
        assert_eq!(
            conditional("start() { exec sidekiq; }; exec puma"),
            owned(&[("exec sidekiq", true), ("exec puma", false)])
        );
        // A role dispatch inside the body stays a dispatch where it is called.
        assert_eq!(
            conditional("start() { [ \"$ROLE\" = web ] && exec puma; exec sidekiq; }; start"),
            owned(&[
                ("[ $ROLE = web ]", true),
                ("exec puma", true),
                ("exec sidekiq", true),
                ("start", false),
                ("[ $ROLE = web ]", false),
                ("exec puma", true),
                ("exec sidekiq", true),
            ])
        );
    }

    #[test]
    fn calls_copy_their_bodies_within_a_budget() {
        let body = "x".repeat(1_000_000);
        let script = format!("f() {{ : {body}; }}{}", "; f".repeat(5_000));
        let commands = super::commands(&script, &none).unwrap();
        let copied: usize = commands
            .iter()
            .flat_map(|c| &c.words)
            .map(String::len)
            .sum();
        // The definition, one copy within the budget, and the calls themselves.
        assert!(copied < 3 * 1_000_000, "{copied}");
    }

    #[test]
    fn how_signals_reach_each_command_is_marked() {
        use Signals::*;
        let signals = |script: &str| -> Vec<(String, Signals)> {
            super::commands(script, &none)
                .unwrap()
                .into_iter()
                .map(|c| (c.words.join(" "), c.signals))
                .collect()
        };
        // bash's `&>` is a redirection; a script that traps TERM hands it on.
        assert_eq!(
            signals("exec sidekiq &>/proc/1/fd/1"),
            [("exec sidekiq".to_owned(), Reach)]
        );
        // Assignments before `exec` set the environment of what it runs (dash and bash exec).
        assert_eq!(
            signals("cd /app; RAILS_ENV=production exec sidekiq; echo never"),
            [
                ("cd /app".to_owned(), Waited),
                ("RAILS_ENV=production exec sidekiq".to_owned(), Reach)
            ]
        );
        // A trap passes SIGTERM on to what runs in the background; the script outlives it only
        // if it waits again once the signal has interrupted its `wait`.
        assert_eq!(
            signals("trap 'kill -TERM $PID' TERM; sidekiq & PID=$!; wait $PID; wait $PID"),
            [
                (
                    "trap kill -TERM $PID TERM".to_owned(),
                    ReachIfGroupSignalled
                ),
                ("sidekiq".to_owned(), Reach),
                ("PID=$!".to_owned(), ReachIfGroupSignalled),
                ("wait $PID".to_owned(), ReachIfGroupSignalled),
                ("wait $PID".to_owned(), ReachIfGroupSignalled),
            ]
        );
        let marked = |script: &str, command: &str| {
            signals(script)
                .into_iter()
                .find(|(words, _)| words == command)
                .map(|(_, signals)| signals)
        };
        assert_eq!(
            marked(
                "trap 'kill -TERM $PID' TERM; sidekiq & PID=$!; wait $PID",
                "sidekiq"
            ),
            Some(EndsFirst)
        );
        // A trap that does not signal leaves it to an init that signals the whole group.
        assert_eq!(
            marked("trap 'echo bye' TERM; sidekiq & wait; wait", "sidekiq"),
            Some(ReachIfGroupSignalled)
        );
        // A trap runs once the foreground command has ended: it passes nothing on to it.
        assert_eq!(
            marked("trap 'kill 0' TERM; sidekiq", "sidekiq"),
            Some(ReachIfGroupSignalled)
        );
        // `trap - TERM` and `trap '' TERM` set no action.
        assert_eq!(
            marked("trap - TERM; sidekiq & wait", "sidekiq"),
            Some(Background)
        );
        // The action may be a function of the script, and the second wait a loop.
        assert_eq!(
            marked(
                "f() { kill $P; }\ntrap f 15\nsidekiq & P=$!\nuntil wait $P; do :; done",
                "sidekiq"
            ),
            Some(Reach)
        );
        assert_eq!(
            signals("migrate && sidekiq 2>&1 | tee log; worker & wait; exec puma"),
            [
                ("migrate".to_owned(), Waited),
                ("sidekiq".to_owned(), Piped),
                ("tee log".to_owned(), Piped),
                ("worker".to_owned(), Background),
                ("wait".to_owned(), Waited),
                ("exec puma".to_owned(), Reach),
            ]
        );
        // Only the script's last command at its top may take the shell's place.
        assert_eq!(
            signals("cd /app && sidekiq\n"),
            [
                ("cd /app".to_owned(), Waited),
                ("sidekiq".to_owned(), ReachIfShellExecsLast)
            ]
        );
        assert_eq!(
            signals("sidekiq || true"),
            [
                ("sidekiq".to_owned(), Waited),
                ("true".to_owned(), ReachIfShellExecsLast)
            ]
        );
        assert_eq!(signals("sidekiq; echo done")[0].1, Waited);
        // What bash 5.2 keeps as the parent of its last command: checked with `unshare --pid`.
        assert_eq!(signals("true; true; sidekiq")[2].1, ReachIfShellExecsLast);
        assert_eq!(signals("true && sidekiq; ")[1].1, ReachIfShellExecsLast);
        assert_eq!(signals("sidekiq # comment")[0].1, ReachIfShellExecsLast);
        assert_eq!(signals("sidekiq\n")[0].1, ReachIfShellExecsLast);
        assert_eq!(signals("set -e; cd /app && sidekiq")[2].1, Waited);
        assert_eq!(signals("sidekiq\n# end\n")[0].1, Waited);
        assert_eq!(signals("sidekiq\n\n")[0].1, Waited);
        assert_eq!(signals("trap cleanup EXIT; sidekiq")[1].1, Waited);
        assert_eq!(signals("trap '' PIPE; sidekiq")[1].1, ReachIfShellExecsLast);
        assert_eq!(signals("sidekiq 2>&1")[0].1, Waited);
        assert_eq!(signals("cd /app && sidekiq >>/proc/1/fd/1")[1].1, Waited);
        assert_eq!(
            signals("set -e\ncd /app && sidekiq\n")[2].1,
            ReachIfShellExecsLast
        );
        assert_eq!(
            signals("puma &\ncd /app && sidekiq")[2].1,
            ReachIfShellExecsLast
        );
        assert_eq!(signals("puma & sidekiq")[1].1, Waited);
        assert_eq!(signals("! sidekiq")[0].1, Waited);
        assert_eq!(signals("time sidekiq")[0].1, Waited);
        assert_eq!(signals("sidekiq\n  ")[0].1, Waited);
        assert_eq!(signals("sidekiq  \n")[0].1, ReachIfShellExecsLast);
        assert_eq!(signals("set -e; cd /app &&\n  sidekiq")[2].1, Waited);
        assert_eq!(signals("set -e; cd /app && # go\n  sidekiq")[2].1, Waited);
        assert_eq!(
            signals("set -e\ncd /app &&\n  sidekiq")[2].1,
            ReachIfShellExecsLast
        );
        assert_eq!(signals("while true; do sidekiq; done")[1].1, Waited);
        assert_eq!(signals("if true; then sidekiq; fi")[1].1, Waited);
        assert_eq!(signals("(sidekiq)")[0].1, Waited);
        // A body is read where it is defined, and again where it is called.
        assert_eq!(signals("run() { sidekiq; }; run")[2].1, Waited);
        assert_eq!(signals("run() { exec sidekiq; }; run")[2].1, Reach);
        assert_eq!(signals("run() { sidekiq; }; run | tee")[2].1, Piped);
    }

    #[test]
    fn recognises_the_classic_hand_written_prestop() {
        assert_eq!(
            commands("kill -TSTP 1; sleep 60"),
            vec![words(&["kill", "-TSTP", "1"]), words(&["sleep", "60"])]
        );
    }

    #[test]
    fn drops_redirections_comments_and_keywords() {
        assert_eq!(
            commands(
                "set -e # strict\nif true; then echo hi >/dev/null 2>&1; fi\n(cd /app) | tee log"
            ),
            vec![
                words(&["set", "-e"]),
                words(&["true"]),
                words(&["echo", "hi"]),
                words(&["cd", "/app"]),
                words(&["tee", "log"]),
            ]
        );
    }

    #[test]
    fn expands_known_variables_only() {
        let lookup = |name: &str| (name == "TIMEOUT").then(|| "45".to_owned());
        assert_eq!(
            parse(
                "sidekiq -t $TIMEOUT -c ${THREADS} -g \"${TIMEOUT}s\" $(nproc)",
                &lookup
            )
            .unwrap(),
            vec![words(&[
                "sidekiq",
                "-t",
                "45",
                "-c",
                "${THREADS}",
                "-g",
                "45s",
                "$(nproc)"
            ])]
        );
    }

    #[test]
    fn keeps_escaped_and_single_quoted_text_literal() {
        assert_eq!(
            commands(r#"echo 'a $B' "c \"d\"" e\ f"#),
            vec![words(&["echo", "a $B", "c \"d\"", "e f"])]
        );
    }

    #[test]
    fn commands_in_loops_are_marked_and_end_nothing() {
        let script = "for i in 1 2; do sleep 1; done; while pgrep x; do exit 0; done; echo end";
        let read = super::commands(script, &none).unwrap();
        let in_loop: Vec<(&str, bool)> = read
            .iter()
            .map(|c| (c.words[0].as_str(), c.in_loop))
            .collect();
        assert_eq!(
            in_loop,
            [
                ("sleep", true),
                ("pgrep", true),
                ("exit", true),
                ("echo", false)
            ]
        );
    }

    #[test]
    fn a_double_bracket_test_is_one_command_and_ends_with_it() {
        assert_eq!(
            commands("[[ $R =~ ^(a|b)$ && -n $X ]] || exit 1; exec sidekiq"),
            vec![
                words(&["[[", "$R", "=~", "^", "(a|b)$", "&&", "-n", "$X", "]]"]),
                words(&["exit", "1"]),
                words(&["exec", "sidekiq"]),
            ]
        );
        // A `[[` that is only an argument, or quoted, opens no test.
        assert_eq!(
            commands("echo [[\nps | grep sidekiq"),
            vec![
                words(&["echo", "[["]),
                words(&["ps"]),
                words(&["grep", "sidekiq"]),
            ]
        );
        assert_eq!(
            commands("'[[' a && b"),
            vec![words(&["[[", "a"]), words(&["b"])]
        );
        assert_eq!(
            commands("if [[ -n $X ]]; then a | b; fi").len(),
            3,
            "[[ after a keyword"
        );
    }

    #[test]
    fn here_documents_are_data_and_script_variables_expand() {
        assert_eq!(
            commands("cat <<EOF > /tmp/a\nsidekiq -t 1\nEOF\ncat <<-'X'\n\tpuma\n\tX\necho done"),
            vec![words(&["cat"]), words(&["cat"]), words(&["echo", "done"])]
        );
        // A here-string is one word of data, not a here-document.
        assert_eq!(
            commands("cat <<< 'x'\necho next"),
            vec![words(&["cat"]), words(&["echo", "next"])]
        );
        let env = |name: &str| (name == "T").then(|| "5".to_owned());
        assert_eq!(
            parse(
                "T=60; U=$T; V=$(date); exec sidekiq -t $T -r $U -g $V",
                &env
            )
            .unwrap(),
            vec![
                words(&["T=60"]),
                words(&["U=60"]),
                words(&["V=$(date)"]),
                words(&["exec", "sidekiq", "-t", "60", "-r", "60", "-g", "$V"]),
            ]
        );
    }

    #[test]
    fn positional_parameters_expand_when_the_arguments_are_known() {
        let args = words(&["sh", "bundle", "exec", "sidekiq"]);
        let run = |script: &str| -> Vec<Vec<String>> {
            commands_with_args(script, Some(&args), &none, &|_| false)
                .unwrap()
                .into_iter()
                .map(|c| c.words)
                .collect()
        };
        assert_eq!(
            run("exec \"$@\""),
            vec![words(&["exec", "bundle", "exec", "sidekiq"])]
        );
        assert_eq!(
            run("echo $1 $3 $7"),
            vec![words(&["echo", "bundle", "sidekiq", ""])]
        );
        // Without them, `$@` stays as written.
        assert_eq!(commands("exec \"$@\""), vec![words(&["exec", "$@"])]);
    }

    #[test]
    fn nothing_runs_after_an_unconditional_exec_or_exit() {
        assert_eq!(
            commands("exec puma; sidekiq"),
            vec![words(&["exec", "puma"])]
        );
        assert_eq!(commands("exit 1\nsidekiq"), vec![words(&["exit", "1"])]);
        // `exec` alone redirects; a guarded or piped one may not end the script.
        assert_eq!(
            commands("exec >/tmp/log 2>&1; sidekiq").len(),
            2,
            "exec with redirections only"
        );
        assert_eq!(commands("[ -f x ] && exec puma; sidekiq").len(), 3);
        assert_eq!(commands("(exec puma); sidekiq").len(), 2);
    }

    #[test]
    fn doubling_a_variable_stops_at_the_limit_instead_of_exhausting_memory() {
        let mut script = String::from("A=x");
        for _ in 0..40 {
            script.push_str("; A=$A$A");
        }
        script.push_str("; exec sidekiq -t $A");
        let commands = commands(&script);
        let last = commands.last().unwrap();
        // 2^12 characters fit; the next doubling is unknown, and so is every one after it.
        assert_eq!(last, &words(&["exec", "sidekiq", "-t", "$A"]));
        // Thousands of references to a long value stop expanding once the budget is spent.
        let long = "y".repeat(MAX_EXPANSION);
        let script = format!("B={long}; echo{}", " $B".repeat(1_000));
        let echoed = commands_with_args(&script, None, &none, &|_| true).unwrap();
        let expanded: usize = echoed[1].words.iter().map(String::len).sum();
        assert!(expanded <= EXPANSION_BUDGET + 4 * 1_000, "{expanded}");
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert_eq!(
            parse("sidekiq -t '25", &none),
            Err(ShellError::UnterminatedQuote("single"))
        );
        assert_eq!(
            parse("sidekiq -t \"25", &none),
            Err(ShellError::UnterminatedQuote("double"))
        );
    }

    #[test]
    fn finds_the_script_of_shell_invocations() {
        let script = |list: &[&str]| script_of(&words(list)).map(str::to_owned);
        assert_eq!(script(&["sh", "-c", "x"]).as_deref(), Some("x"));
        assert_eq!(script(&["/bin/bash", "-lc", "x"]).as_deref(), Some("x"));
        assert_eq!(
            script(&["bash", "-e", "-o", "pipefail", "-c", "x"]).as_deref(),
            Some("x")
        );
        assert_eq!(
            script(&["bash", "--login", "-c", "x"]).as_deref(),
            Some("x")
        );
        assert_eq!(
            script(&["bash", "-euo", "pipefail", "-c", "x"]).as_deref(),
            Some("x")
        );
        assert_eq!(script(&["bash", "start.sh"]), None);
        assert_eq!(script(&["ruby", "-c", "x"]), None);
        // su and runuser run a command through the user's shell.
        assert_eq!(script(&["su", "-", "app", "-c", "x"]).as_deref(), Some("x"));
        assert_eq!(
            script(&["su", "-s", "/bin/sh", "app", "--command=x"]).as_deref(),
            Some("x")
        );
        assert_eq!(
            script(&["/sbin/runuser", "-l", "app", "-c", "x"]).as_deref(),
            Some("x")
        );
        assert_eq!(script(&["su", "app"]), None);
    }

    #[test]
    fn skips_wrappers() {
        let rest = |list: &[&str]| skip_wrappers(&words(list)).to_vec();
        assert_eq!(
            rest(&["bundle", "exec", "sidekiq", "-t", "5"]),
            words(&["sidekiq", "-t", "5"])
        );
        assert_eq!(
            rest(&["env", "-u", "X", "A=1", "exec", "sidekiq"]),
            words(&["sidekiq"])
        );
        assert_eq!(rest(&["tini", "-g", "--", "sidekiq"]), words(&["sidekiq"]));
        assert_eq!(
            rest(&["timeout", "-s", "INT", "1h", "sidekiq"]),
            words(&["sidekiq"])
        );
        assert_eq!(rest(&["nice", "-n", "5", "sidekiq"]), words(&["sidekiq"]));
        assert_eq!(rest(&["gosu", "app", "sidekiq"]), words(&["sidekiq"]));
        assert_eq!(
            rest(&["sudo", "-E", "-u", "app", "bundle", "exec", "sidekiq"]),
            words(&["sidekiq"])
        );
        assert_eq!(
            rest(&["stdbuf", "-oL", "-e", "0", "sidekiq"]),
            words(&["sidekiq"])
        );
        assert_eq!(rest(&["rbenv", "exec", "sidekiq"]), words(&["sidekiq"]));
        for wrapped in [
            &["bundle", "_2.4.0_", "exec", "sidekiq"][..],
            &["bundle", "exec", "ddtracerb", "exec", "sidekiq"],
            &["op", "run", "--env-file=.env", "--", "sidekiq"],
            &["chamber", "exec", "app", "shared", "--", "sidekiq"],
            &["aws-vault", "exec", "prod", "--", "sidekiq"],
            &["aws-vault", "exec", "prod", "sidekiq"],
            &[
                "aws-vault",
                "exec",
                "--backend",
                "file",
                "prod",
                "--",
                "sidekiq",
            ],
            &["aws-vault", "exec", "prod", "--no-session", "--", "sidekiq"],
            &[
                "aws-vault",
                "exec",
                "--keychain",
                "k",
                "prod",
                "bundle",
                "exec",
                "sidekiq",
            ],
            &[
                "aws-vault",
                "exec",
                "-d",
                "1h",
                "--no-session",
                "prod",
                "sidekiq",
            ],
            &[
                "aws-vault",
                "exec",
                "--duration=1h",
                "prod",
                "--",
                "sidekiq",
            ],
            &["berglas", "exec", "--", "sidekiq"],
            &["taskset", "-c", "0,1", "sidekiq"],
            &["taskset", "0x3", "sidekiq"],
        ] {
            assert_eq!(rest(wrapped), words(&["sidekiq"]), "{wrapped:?}");
        }
        // Without the `--` or the `exec`, the command cannot be told; an option's missing
        // value ends the line.
        assert_eq!(rest(&["taskset", "-c"]), Vec::<String>::new());
        assert_eq!(rest(&["op", "run", "--"]), Vec::<String>::new());
        assert_eq!(rest(&["op", "run", "sidekiq"]), Vec::<String>::new());
        assert_eq!(rest(&["aws-vault", "exec", "prod"]), Vec::<String>::new());
        // Without `--`, aws-vault takes `-t 60` (its MFA token): Sidekiq runs without it.
        assert_eq!(
            rest(&["aws-vault", "exec", "prod", "sidekiq", "-t", "60"]),
            words(&["sidekiq"])
        );
        assert_eq!(
            rest(&["aws-vault", "exec", "prod", "--", "sidekiq", "-t", "60"]),
            words(&["sidekiq", "-t", "60"])
        );
        assert_eq!(
            rest(&["bundle", "_2.4.0_", "install"]),
            words(&["bundle", "_2.4.0_", "install"])
        );
        assert_eq!(rest(&["/entrypoint.sh", "sidekiq"]), words(&["sidekiq"]));
        assert_eq!(rest(&["/app/stop.sh"]), Vec::<String>::new());
        assert_eq!(rest(&["timeout"]), Vec::<String>::new());
        assert_eq!(rest(&["rails", "server"]), words(&["rails", "server"]));
    }

    proptest! {
        #[test]
        fn never_panics(script in "[a-z $'\"\\\\;&|()<>#{}`\n0-9=-]{0,60}") {
            let _ = parse(&script, &|name: &str| Some(name.to_lowercase()));
        }

        #[test]
        fn plain_words_survive(list in proptest::collection::vec("[a-zA-Z0-9_.,:/=-]{1,10}", 1..6)) {
            prop_assume!(!KEYWORDS.contains(&list[0].as_str()));
            let script = list.join(" ");
            prop_assert_eq!(commands(&script), vec![list]);
        }
    }
}
