# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_voyandzctl_global_optspecs
    string join \n bus= no-ask-password h/help V/version
end

function __fish_voyandzctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_voyandzctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_voyandzctl_using_subcommand
    set -l cmd (__fish_voyandzctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -s V -l version -d 'Print version'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "status" -d 'Shows the server and how many feeds and streams are in which state'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "feeds" -d 'Lists the feeds'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "streams" -d 'Lists the streams'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "start" -d 'Starts a feed, or ends a stream\'s stop'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "stop" -d 'Stops a feed or stream, and keeps it stopped until started'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "restart" -d 'Replaces a feed\'s or stream\'s process; clients stay'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "disconnect" -d 'Disconnects every client of a stream and prints how many there were'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "reload" -d 'Reloads the config file, as SIGHUP does, and prints what changed'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "screenshot" -d 'Writes a picture of a stream, as its /pic URL gives it'
complete -c voyandzctl -n "__fish_voyandzctl_needs_command" -f -a "watch" -d 'Prints each change as it happens, until Ctrl-C'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand status" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand status" -l json -d 'Print JSON for scripts (`watch`: one object per line)'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand status" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand feeds" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand feeds" -l json -d 'Print JSON for scripts (`watch`: one object per line)'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand feeds" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand feeds" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand streams" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand streams" -l json -d 'Print JSON for scripts (`watch`: one object per line)'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand streams" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand streams" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand start" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand start" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand start" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand stop" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand stop" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand restart" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand restart" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand restart" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand disconnect" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand disconnect" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand disconnect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand reload" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand reload" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand reload" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand screenshot" -s o -l output -d 'Write the picture to FILE (`-`: stdout, even a terminal)' -r -F
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand screenshot" -l quality -d 'JPEG quality in percent, 1 to 100 (default: the server\'s default)' -r
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand screenshot" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand screenshot" -l png -d 'PNG instead of JPEG'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand screenshot" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand screenshot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand watch" -l bus -d 'Where voyandz is: on the system bus (as systemd runs it) or the user\'s session bus' -r -f -a "system\t'The system bus: changes are authorised by polkit'
session\t'A session bus: only its user may change things'"
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand watch" -l json -d 'Print JSON for scripts (`watch`: one object per line)'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand watch" -l no-ask-password -d 'Do not ask for a password: a change that polkit allows only after authentication is refused instead. Without it, a change asked from a terminal by a user other than root starts polkit\'s text agent (pkttyagent), which prompts there if polkit asks'
complete -c voyandzctl -n "__fish_voyandzctl_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
