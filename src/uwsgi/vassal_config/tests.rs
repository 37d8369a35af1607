//! The config reader against uWSGI's own behaviour, case by case.

use super::*;

/// The vassal of the uwsgi_reload.py setup (docs/UWSGI.md §18), one file behind
/// many `app_NN.ini` symlinks, with DIR, SS_SOCK and KEY filled in.
const SEED_INI: &str = "\
[uwsgi]
processes = 1
socket = /srv/vassals/%n.sock
subscribe2 = server=/run/uwsgi/ss.sock,key=example.com
unsubscribe-on-graceful-reload
start-unsubscribed
master-fifo = /srv/vassals/%n.fifo
hook-accepting1-once = writefifo:/srv/vassals/%n.fifo S
";

/// experiments/app1.ini.good, verbatim.
const APP1_GOOD: &str = "[uwsgi]
plugins = python3
master = true
processes = 2
socket = /tmp/uwsgi-lab/%n.sock
wsgi-file = /tmp/uwsgi-lab/app.py
env = APPNAME=%n
subscribe2 = server=/tmp/uwsgi-lab/sub.sock,key=example.com
stats = /tmp/uwsgi-lab/%n-stats.sock
master-fifo = /tmp/uwsgi-lab/%n.fifo
logto = /tmp/uwsgi-lab/logs/%n.log
log-date = %%Y-%%m-%%d %%H:%%M:%%S
unsubscribe-on-graceful-reload = true
";

fn parse(text: &str) -> VassalConfig {
    VassalConfig::parse(text, "app_01.ini", "/srv/vassals")
}

#[test]
fn seed_setup_vassal() {
    let c = parse(SEED_INI);
    assert_eq!(c.sockets, ["/srv/vassals/app_01.sock"]);
    assert_eq!(
        c.subscriptions,
        [SubscribeTarget {
            server: "/run/uwsgi/ss.sock".into(),
            key: "example.com".into(),
            ..SubscribeTarget::default()
        }]
    );
    assert_eq!(c.master_fifos, ["/srv/vassals/app_01.fifo"]);
    assert!(c.unsubscribe_on_graceful_reload);
    assert!(c.start_unsubscribed);
    assert!(!c.need_app);
    assert!(!c.lazy_apps);
    assert_eq!(c.accepting_hooks, ["writefifo:/srv/vassals/app_01.fifo S"]);
    assert_eq!(c.node_name().as_deref(), Some("/srv/vassals/app_01.sock"));
    assert_eq!(
        c.writefifo_hook(),
        Some((PathBuf::from("/srv/vassals/app_01.fifo"), "S".to_string()))
    );
    assert!(c.includes.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn seed_setup_each_symlink_name_gives_its_own_paths() {
    let c = VassalConfig::parse(SEED_INI, "app_17.ini", "/srv/vassals/");
    assert_eq!(c.node_name().as_deref(), Some("/srv/vassals/app_17.sock"));
    assert_eq!(c.master_fifos, ["/srv/vassals/app_17.fifo"]);
}

#[test]
fn experiments_app1_good() {
    let c = VassalConfig::parse(APP1_GOOD, "app1.ini", "/tmp/uwsgi-lab");
    assert_eq!(c.sockets, ["/tmp/uwsgi-lab/app1.sock"]);
    assert_eq!(c.node_name().as_deref(), Some("/tmp/uwsgi-lab/app1.sock"));
    assert_eq!(c.subscriptions.len(), 1);
    assert_eq!(c.subscriptions[0].server, "/tmp/uwsgi-lab/sub.sock");
    assert_eq!(c.subscriptions[0].key, "example.com");
    assert_eq!(c.subscriptions[0].addr, None);
    assert_eq!(c.master_fifos, ["/tmp/uwsgi-lab/app1.fifo"]);
    assert!(c.unsubscribe_on_graceful_reload);
    assert!(!c.start_unsubscribed);
    assert!(c.accepting_hooks.is_empty());
    assert_eq!(c.writefifo_hook(), None);
    // `%%` is a literal percent after substitution.
    assert_eq!(c.get("log-date"), Some("%Y-%m-%d %H:%M:%S"));
    assert_eq!(c.get("env"), Some("APPNAME=app1"));
    assert_eq!(c.get("stats"), Some("/tmp/uwsgi-lab/app1-stats.sock"));
    assert_eq!(c.get("master"), Some("true"));
    assert_eq!(c.options.len(), 12);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn magic_variables() {
    let text = "[uwsgi]\n\
        n = %n\nN = %N\ne = %e\ns = %s\np = %p\nd = %d\nc = %c\no = %o\n\
        v = %v\nzero = %0\none = %1\nnine = %9\nx = %x\npct = 100%%\n\
        unknown = a%zb\nf = %f\n";
    let c = VassalConfig::parse(text, "app.prod.ini", "/srv/uwsgi/vassals");
    let g = |k| c.get(k).unwrap();
    assert_eq!(g("n"), "app.prod");
    assert_eq!(g("N"), "app.prod");
    assert_eq!(g("e"), "ini");
    assert_eq!(g("s"), "app.prod.ini");
    assert_eq!(g("p"), "/srv/uwsgi/vassals/app.prod.ini");
    assert_eq!(g("d"), "/srv/uwsgi/vassals/");
    assert_eq!(g("c"), "vassals");
    assert_eq!(g("o"), "app.prod.ini");
    assert_eq!(g("v"), "/srv/uwsgi/vassals");
    assert_eq!(g("zero"), "srv");
    assert_eq!(g("one"), "uwsgi");
    assert_eq!(g("nine"), "");
    assert_eq!(g("x"), "");
    assert_eq!(g("pct"), "100%");
    // uWSGI maps every letter it does not know to "" (there is no %f:
    // the file name is %s).
    assert_eq!(g("unknown"), "ab");
    assert_eq!(g("f"), "");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// Expected values printed by `uwsgi --ini app_07.ini --get KEY`
/// (Debian uWSGI 2.0), app_07.ini a symlink to this file in
/// /tmp/vc-check/sub.
#[test]
fn agrees_with_uwsgi_get() {
    let text = "[uwsgi]\nn = %n\ne = %e\ns = %s\np = %p\nd = %d\nc = %c\no = %o\n\
        v = %v\nzero = %0\nf = %f\npct = 100%%\nref = %(base)/x\nbase = /run/app\n\
        base = /ignored\ndd = /run/%%(n).sock\nunk = a%(nope)b\nlog-date = %%Y-%%m\nbare\n";
    let c = VassalConfig::parse(text, "app_07.ini", "/tmp/vc-check/sub");
    for (k, want) in [
        ("n", "app_07"),
        ("e", "ini"),
        ("s", "app_07.ini"),
        ("p", "/tmp/vc-check/sub/app_07.ini"),
        ("d", "/tmp/vc-check/sub/"),
        ("c", "sub"),
        ("o", "app_07.ini"),
        ("v", "/tmp/vc-check/sub"),
        ("zero", "tmp"),
        ("f", ""),
        ("pct", "100%"),
        ("ref", "/run/app/x"),
        ("dd", "/run/app_07.sock"),
        ("unk", "a%(nope)b"),
        ("log-date", "%Y-%m"),
        ("bare", ""),
    ] {
        assert_eq!(c.get(k), Some(want), "option {k}");
    }
}

#[test]
fn magic_without_extension_and_at_root() {
    let c = VassalConfig::parse("[uwsgi]\na = %n|%e|%c|%d\n", "vassal", "/");
    assert_eq!(c.get("a"), Some("vassal|||/"));
    // `%` as the very last byte stays.
    let c = VassalConfig::parse("[uwsgi]\na = 50%", "x.ini", "/d");
    assert_eq!(c.get("a"), Some("50%"));
}

#[test]
fn runtime_magic_is_kept_and_warned_once() {
    let c = parse("[uwsgi]\nsocket = /run/%h.sock\nlogto = /var/log/%h-%t.log\n");
    assert_eq!(c.sockets, ["/run/%h.sock"]);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("%h"));
    assert!(c.warnings[1].contains("%t"));
}

#[test]
fn placeholders_use_the_first_option_of_that_name_anywhere() {
    let text = "[uwsgi]\n\
        socket = %(base)/%n.sock\n\
        base = /run/app\n\
        base = /ignored\n\
        fifo = %(sock)\n\
        sock = %(base)/x\n\
        nested = [%(fifo)]\n";
    let c = parse(text);
    assert_eq!(c.sockets, ["/run/app/app_01.sock"]);
    assert_eq!(c.get("nested"), Some("[/run/app/x]"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn double_percent_paren_becomes_a_placeholder_like_uwsgi() {
    let c = parse("[uwsgi]\nname = web\nsocket = /run/%%(name).sock\n");
    assert_eq!(c.sockets, ["/run/web.sock"]);
}

#[test]
fn unresolved_placeholders_stay_with_a_warning() {
    let c = parse("[uwsgi]\na = %(nope)-%(b + 1)-%()\nb = 2\nloop = x%(loop)\n");
    assert_eq!(c.get("a"), Some("%(nope)-%(b + 1)-%()"));
    assert!(c.get("loop").unwrap().contains("%(loop)"));
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
}

#[test]
fn reference_cycles_terminate() {
    let c = parse("[uwsgi]\na = <%(b)>\nb = [%(a)]\n");
    assert!(c.get("a").unwrap().len() <= 64 * 1024);
    assert!(!c.warnings.is_empty());
}

#[test]
fn ini_syntax() {
    let text = "\
master = outside-any-section
[other]
socket = /wrong.sock
[uwsgi]
  ; comment
# comment too
socket=/a.sock   \r
socket = /b.sock ; not a comment
 need-app \t
lazy-apps = off
weird = a = b
[uwsgi]
socket = /c.sock
";
    let c = parse(text);
    assert_eq!(c.sockets, ["/a.sock", "/b.sock ; not a comment", "/c.sock"]);
    assert!(c.need_app);
    assert!(!c.lazy_apps);
    assert_eq!(c.get("weird"), Some("a = b"));
    assert_eq!(c.get("master"), None);
}

#[test]
fn booleans_follow_uwsgi_opt_true_and_last_wins() {
    for (v, want) in [
        ("", true),
        ("true", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("anything", true),
        ("false", false),
        ("FALSE", false),
        ("Off", false),
        ("no", false),
        ("0", false),
    ] {
        let c = parse(&format!("[uwsgi]\nstart-unsubscribed = {v}\n"));
        assert_eq!(c.start_unsubscribed, want, "value {v:?}");
    }
    let c = parse("[uwsgi]\nneed-app\nneed-app = false\n");
    assert!(!c.need_app);
}

#[test]
fn sockets_of_every_protocol_in_order() {
    let c = parse(
        "[uwsgi]\nhttp-socket = :8080\nsocket = /run/a.sock\n\
         https-socket = 0.0.0.0:8443,c.crt,c.key\nuwsgi-socket = 127.0.0.1:3031\n\
         shared-socket = 127.0.0.1:4000\n",
    );
    assert_eq!(
        c.sockets,
        [":8080", "/run/a.sock", "0.0.0.0:8443", "127.0.0.1:3031"]
    );
    assert_eq!(c.node_name().as_deref(), Some(":8080"));
}

#[test]
fn auto_port_socket_is_warned() {
    let c = parse("[uwsgi]\nsocket = 127.0.0.1:0\n");
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].contains("127.0.0.1:0"));
}

#[test]
fn subscribe2_forms() {
    let c = parse(
        "[uwsgi]\nsocket = /run/a.sock\nsocket = 127.0.0.1:3031\n\
         subscribe2 = server=127.0.0.1:7000,key=a.example,addr=10.0.0.1:3031,modifier1=30,modifier2=2,weight=4\n\
         subscribe2 = server=/run/ss.sock,key=b.example,socket=1,addr=ignored\n\
         subscribe2 = server=/run/ss.sock,key=c.example,socket=9,addr=kept\n\
         subscribe2 = server=/run/ss.sock,key=d.example,check=/run/maint\n\
         subscribe2 = server=/run/ss.sock,key=e\\,x.example\n\
         subscribe2 = server=/run/ss.sock, key=spaces-matter\n\
         subscribe2 = key=no-server\n",
    );
    let s = &c.subscriptions;
    assert_eq!(s.len(), 5, "{s:?}");
    assert_eq!(
        s[0],
        SubscribeTarget {
            server: "127.0.0.1:7000".into(),
            key: "a.example".into(),
            addr: Some("10.0.0.1:3031".into()),
            modifier1: 30,
            modifier2: 2,
            check: None,
        }
    );
    assert_eq!(s[1].addr.as_deref(), Some("127.0.0.1:3031"));
    assert_eq!(s[2].addr.as_deref(), Some("kept"));
    assert_eq!(s[3].check.as_deref(), Some("/run/maint"));
    assert_eq!(c.address_of(&s[3]).as_deref(), Some("/run/a.sock"));
    assert_eq!(s[4].key, "e,x.example");
    assert_eq!(c.node_name().as_deref(), Some("10.0.0.1:3031"));
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
}

#[test]
fn subscribe_to_forms() {
    let c = parse(
        "[uwsgi]\nsocket = /run/a.sock\nshared-socket = 127.0.0.1:4000\n\
         subscribe-to = /run/ss.sock:a.example\n\
         subscribe-to = 127.0.0.1:7000:b.example,5\n\
         st = 10.0.0.2:3031=127.0.0.1:7000:c.example\n\
         subscribe = =0=/run/ss.sock:d.example,7,/etc/key.pem\n\
         subscribe-to = /run/ss.sock:@/etc/keys.txt\n\
         subscribe-to = noport\n\
         subscribe-to = =3=/run/ss.sock:e.example\n",
    );
    let s = &c.subscriptions;
    assert_eq!(s.len(), 4, "{s:?}");
    assert_eq!(
        s[0],
        SubscribeTarget {
            server: "/run/ss.sock".into(),
            key: "a.example".into(),
            ..SubscribeTarget::default()
        }
    );
    assert_eq!(s[1].server, "127.0.0.1:7000");
    assert_eq!(s[1].key, "b.example");
    assert_eq!(s[1].modifier1, 5);
    assert_eq!(s[2].addr.as_deref(), Some("10.0.0.2:3031"));
    assert_eq!(s[2].server, "127.0.0.1:7000");
    assert_eq!(s[3].addr.as_deref(), Some("127.0.0.1:4000"));
    assert_eq!(s[3].key, "d.example");
    assert_eq!(s[3].modifier1, 7);
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("keys.txt"), "{:?}", c.warnings);
}

#[test]
fn subscribe_to_is_sent_before_subscribe2() {
    let c = parse(
        "[uwsgi]\nsocket = /a.sock\nsubscribe2 = server=/ss,key=two\nsubscribe-to = /ss:one\n",
    );
    let keys: Vec<&str> = c.subscriptions.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["one", "two"]);
}

#[test]
fn subscribe_with_modifier1_overrides_all() {
    let c = parse(
        "[uwsgi]\nsocket = /a.sock\nsubscribe2 = server=/ss,key=k,modifier1=1\n\
         subscribe-with-modifier1 = 9\n",
    );
    assert_eq!(c.subscriptions[0].modifier1, 9);
}

#[test]
fn no_socket_and_no_addr_means_no_node() {
    let c = parse("[uwsgi]\nsubscribe2 = server=/ss,key=k\n");
    assert_eq!(c.node_name(), None);
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(parse("[uwsgi]\nmaster = true\n").node_name(), None);
}

#[test]
fn node_name_without_subscription_is_first_socket() {
    let c = parse("[uwsgi]\nsocket = /a.sock\nsocket = /b.sock\n");
    assert_eq!(c.node_name().as_deref(), Some("/a.sock"));
}

#[test]
fn the_pure_parse_records_includes_without_following_them() {
    let c = parse("[uwsgi]\nini = %dbase.ini\ninclude = /etc/uwsgi/common.ini\nsocket = /a\n");
    assert!(c.followed_includes.is_empty());
    assert_eq!(
        c.includes,
        ["/srv/vassals/base.ini", "/etc/uwsgi/common.ini"]
    );
    assert_eq!(c.sockets, ["/a"]);
}

#[test]
fn logic_blocks_are_warned() {
    let c = parse("[uwsgi]\nif-env = PROD\nsocket = /a\nendif =\n");
    assert_eq!(c.sockets, ["/a"]);
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn accepting_hooks_and_writefifo_variants() {
    let c = parse(
        "[uwsgi]\nhook-accepting = exec:true\nhook-accepting1 = !writefifo:run/%n.fifo S1\n\
         hook-accepting1-once = writefifo:/x.fifo S\n",
    );
    assert_eq!(c.accepting_hooks.len(), 3);
    // First writefifo in file order, private marker dropped, relative
    // path resolved against the vassal's directory, payload verbatim.
    assert_eq!(
        c.writefifo_hook(),
        Some((PathBuf::from("/srv/vassals/run/app_01.fifo"), "S1".into()))
    );
    let c = parse("[uwsgi]\nhook-accepting1-once = writefifo:/x.fifo\n");
    assert_eq!(c.writefifo_hook(), None, "no payload: uWSGI refuses it");
}

#[test]
fn master_fifo_paths_resolve_relative_ones() {
    let c = parse("[uwsgi]\nmaster-fifo = %n.fifo\nmaster-fifo = /abs.fifo\n");
    assert_eq!(
        c.master_fifo_paths(),
        [
            PathBuf::from("/srv/vassals/app_01.fifo"),
            PathBuf::from("/abs.fifo")
        ]
    );
}

#[test]
fn kvlist_escapes_and_last_value_wins() {
    assert_eq!(
        kvlist("a=1,b=x\\,y,a=2,junk,c=d=e"),
        vec![
            ("a".to_string(), "2".to_string()),
            ("b".to_string(), "x,y".to_string()),
            ("c".to_string(), "d=e".to_string()),
        ]
    );
}

#[test]
fn atoi_like_c() {
    assert_eq!(atoi_u8("30"), 30);
    assert_eq!(atoi_u8(" 7x"), 7);
    assert_eq!(atoi_u8("abc"), 0);
    assert_eq!(atoi_u8("256"), 0);
    assert_eq!(atoi_u8("-1"), 255);
}

#[test]
fn a_vassal_with_two_addresses_has_two_node_names() {
    let c = parse(
        "[uwsgi]\nsocket = /r/%n.sock\nsocket = /r/%n-b.sock\nsubscribe2 = server=/r/ss.sock,key=k,addr=/r/%n.sock\nsubscribe2 = server=/r/ss.sock,key=k,addr=/r/%n-b.sock\n",
    );
    assert_eq!(c.node_names(), ["/r/app_01.sock", "/r/app_01-b.sock"]);
    // Two subscriptions of one address (two keys): one node name.
    let c = parse("[uwsgi]\nsocket = /r/%n.sock\nsubscribe2 = server=/r/ss.sock,key=a\nsubscribe2 = server=/r/ss.sock,key=b\n");
    assert_eq!(c.node_names(), ["/r/app_01.sock"]);
}

/// Early announce is on by default only where the vassal subscribes by
/// itself from its master's start: not with `start-unsubscribed`, hook or
/// not (the writefifo `S` hook can lose its start-up race).
#[test]
fn announces_on_its_own_follows_the_config() {
    assert!(!parse(SEED_INI).announces_on_its_own());
    let plain = "[uwsgi]\nsocket = /r/%n.sock\nsubscribe2 = server=/r/ss.sock,key=k\n";
    assert!(parse(plain).announces_on_its_own());
    let lazy = format!("{plain}lazy-apps = true\n");
    assert!(parse(&lazy).announces_on_its_own());
    let blocked = format!("{plain}start-unsubscribed = true\nmaster-fifo = /r/%n.fifo\n");
    assert!(!parse(&blocked).announces_on_its_own());
    let hooked = format!("{blocked}hook-accepting1-once = writefifo:/r/%n.fifo S\n");
    assert!(!parse(&hooked).announces_on_its_own());
    let none = "[uwsgi]\nsocket = /r/%n.sock\n";
    assert!(!parse(none).announces_on_its_own());
}

#[test]
fn lost_hook_marker_names_the_hook_path_as_written() {
    let c = parse(SEED_INI);
    assert_eq!(
        c.lost_hook_marker().as_deref(),
        Some("open(\"/srv/vassals/app_01.fifo\"): No such device")
    );
    // Relative: uWSGI logs the path it opened, as written.
    let rel = SEED_INI.replace("writefifo:/srv/vassals/%n.fifo", "writefifo:%n.fifo");
    assert_eq!(
        parse(&rel).lost_hook_marker().as_deref(),
        Some("open(\"app_01.fifo\"): No such device")
    );
    // Without start-unsubscribed nothing is blocked; another payload is not S.
    assert_eq!(
        parse(&SEED_INI.replace("start-unsubscribed\n", "")).lost_hook_marker(),
        None
    );
    assert_eq!(
        parse(&SEED_INI.replace("%n.fifo S", "%n.fifo q")).lost_hook_marker(),
        None
    );
    assert_eq!(parse(APP1_GOOD).lost_hook_marker(), None);
}

#[test]
fn log_file_from_logto_but_not_a_udp_address() {
    assert_eq!(
        parse(APP1_GOOD).log_file(),
        Some(PathBuf::from("/tmp/uwsgi-lab/logs/app_01.log"))
    );
    assert_eq!(
        parse("[uwsgi]\nlogto = logs/%n.log\n").log_file(),
        Some(PathBuf::from("/srv/vassals/logs/app_01.log"))
    );
    assert_eq!(parse("[uwsgi]\nlogto = 127.0.0.1:5140\n").log_file(), None);
    assert_eq!(parse(SEED_INI).log_file(), None);
}

/// A short ini of chained placeholders (each option four copies of the one
/// before) used to grow to hundreds of MB: every option stays under its own
/// cap, so only a budget for the whole file stops it. It is refused, having
/// built no more than the budget.
#[test]
fn chained_placeholders_stop_at_the_files_budget_and_are_refused() {
    let mut text = String::from("[uwsgi]\no0 = ");
    text.push_str(&"x".repeat(1000));
    text.push('\n');
    for i in 1..400 {
        let p = format!("%(o{})", i - 1);
        text.push_str(&format!("o{i} = {}\n", p.repeat(4)));
    }
    assert!(text.len() < 40 * 1024);
    let c = parse(&text);
    let why = c.over_limit.as_deref().expect("refused");
    assert!(why.contains("4096 KiB"), "{why}");
    let built: usize = c.options.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(built <= MAX_EXPANSION + text.len(), "{built}");
}

/// An unclosed `%(` followed by a megabyte of `%(`: one pass, not one scan
/// to the end per `%(` (that took seconds); nothing is substituted.
#[test]
fn a_megabyte_of_unclosed_placeholders_is_one_pass() {
    let line = "%(".repeat(512 * 1024);
    assert!(text::placeholders(&line).is_empty());
    let c = parse(&format!("[uwsgi]\na = {line}\n"));
    assert_eq!(c.get("a").map(str::len), Some(line.len()));
    assert!(c.over_limit.is_none());
    // A closing `)` at the end closes only the innermost.
    let closed = format!("{line}x)");
    assert_eq!(
        text::placeholders(&closed),
        [(line.len() - 2, line.len() + 1)]
    );
    // `%p` is a whole path for two bytes: the magic pass has the budget too.
    let c = parse(&format!("[uwsgi]\na = {}\n", "%p".repeat(512 * 1024)));
    assert!(c.over_limit.is_some());
    assert!(c.get("a").map_or(0, str::len) <= MAX_EXPANSION + 1024 * 1024);
}
