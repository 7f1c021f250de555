complete -c voyandz -s f -d 'Configuration file (default: $VOYANDZ_CONFFILE, /etc/voyandz.ini, /etc/voyandz)' -r -F
complete -c voyandz -l log-level -d 'Log level: error, warn, info, debug or trace (RUST_LOG overrides it)' -r
complete -c voyandz -l log -d 'Where to log: the journal when systemd connected stderr to it (auto), stderr, or the journal (natively, with priorities and FEED, STREAM, CLIENT, CHILD_PID fields)' -r -f -a "auto\t'The journal when systemd connected stderr to it (`JOURNAL_STREAM`), else stderr'
stderr\t'stderr, one line per event'
journal\t'The journal, natively: priorities and the fields FEED, STREAM, CLIENT, CHILD_PID'"
complete -c voyandz -l bus -d 'D-Bus control (org.voyandz.Voyandz1, for voyandzctl and busctl): the system bus when systemd started the server (auto), system, session, or none' -r -f -a "auto\t'The system bus when systemd started the server, none otherwise'
system\t'The system bus ($DBUS_SYSTEM_BUS_ADDRESS, or /run/dbus/system_bus_socket)'
session\t'The user\'s session bus ($DBUS_SESSION_BUS_ADDRESS)'
none\t'No D-Bus'"
complete -c voyandz -l check -d 'Validate the configuration, print it in its final form and exit (0 when valid)'
complete -c voyandz -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandz -s V -l version -d 'Print version'
