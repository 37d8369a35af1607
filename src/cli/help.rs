//! `--help`: a man-page synopsis.

pub const HELP: &str = "\
uwsgi-reload - gracefully reload every uWSGI vassal behind a fastrouter

USAGE
    uwsgi-reload --emperor-path DIR --fastrouter-stats-socket SOCKET
                 --emperor-stats-socket SOCKET [OPTIONS]
    uwsgi-reload status --emperor-path DIR --fastrouter-stats-socket SOCKET
                 --emperor-stats-socket SOCKET [--json]

    Reloads every vassal config in DIR by moving its mtime forward, as many at
    once as keeps at least K vassals live per fastrouter key, and waits for
    each to accept and re-subscribe. A SOCKET is a unix path or host:port.

OPTIONS (as uwsgi_reload.py)
    --emperor-path DIR                 directory the Emperor watches (required)
    --fastrouter-stats-socket SOCKET   fastrouter stats socket (required)
    --emperor-stats-socket SOCKET      Emperor stats socket (required)
    --vassal-config-file-suffix STR    vassal config suffix [default: .ini]
    --minimum-active-vassals K         live vassals kept per key [default: 1]
    --timeout SECONDS                  per vassal, from its touch [default: 60]
    --check-interval SECONDS           between stats reads [default: 0.1]
    -q, --quiet                        print only errors
    -h, --help                         this text
    -V, --version                      the version

OPTIONS (beyond uwsgi_reload.py)
    --json                     one JSON object per event on stdout; human
                               lines go to stderr
    --keep-going               carry on after a failed vassal while K holds
    --max-failures N           stop touching new vassals after N failures
                               [default: 1]
    --max-parallel N           at most N vassals reloading at once
    --subscription-server ADDR drain through this subscription server
                               [default: from the vassal configs]
    --drain-timeout SECONDS    bound on waiting for in-flight sessions of an
                               unsubscribed node [default: 30]
    --no-drain                 touch without unsubscribing first
    --no-repair                never write S to a vassal's master FIFO
    --allow-downtime           proceed when a key has fewer than K+1 nodes
    --node-name TEMPLATE       node name of a vassal, with {name} (config
                               file name) and {stem} [default: same stem]
    --touch-target             touch the symlink target, for Emperors that
                               follow links (refused if links share a target)
    --max-unavailable N|P%     at most N (or P% rounded down, at least 1) of a
                               key's nodes out at once; raises K to match
    --canary N                 reload N vassals first; touch no more until
                               they stayed live for --min-ready
    --min-ready SECONDS        a reloaded vassal counts as live only after
                               this long subscribed [default: 0]
    --deadline SECONDS         touch nothing new after this long; in-flight
                               vassals finish
    --probe PATH               count a reloaded vassal as live only once GET
                               PATH, sent straight to its socket (uwsgi
                               protocol, the key as host), answers 2xx/3xx
    --only GLOB                reload only configs matching GLOB (repeatable)
    --exclude GLOB             skip configs matching GLOB (repeatable)
    --subscription-tolerance SECONDS
                               a node announced longer ago than this is not
                               live (the fastrouter's subscription-tolerance;
                               raise it with a larger subscribe-freq)
                               [default: 17]
    --stats-timeout SECONDS    connect+read bound of one stats read [default: 5]
    --syslog                   send event lines to /dev/log too
    --strict                   doctor findings on the vassal configs are
                               errors (exit 3), not warnings
    --dry-run                  preflight and print the plan; touch nothing

SIGNALS
    SIGINT, SIGTERM  touch nothing new, let in-flight vassals finish, exit
                     130/143; a second one exits at once
    SIGUSR1          print progress

EXIT STATUS
    0    every vassal reloaded
    1    some vassal failed, timed out, or could not be reloaded within K
    2    usage error
    3    precondition failed (lock held, stats socket, preflight): nothing
         was touched
    130  interrupted by SIGINT;  143  by SIGTERM
";
