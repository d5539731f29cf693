# moat-completion.bash - bash completion for the moat command-line client.
#
# Install: copy to /usr/share/bash-completion/completions/moat (or
# ~/.local/share/bash-completion/completions/moat), or source it from
# ~/.bashrc:   . /path/to/moat-completion.bash
#
# Completes commands, subcommands and options; server names for `moat use`
# and `moat logout` (from the config file, never its tokens); files where a
# command takes one; workspace and template names (asked from the server
# with `moat ws list --json` / `moat template list --json`, with jq), and
# recording and session ids for `moat recording get` / `moat session end`.

_moat_servers()
{
    local cfg="${XDG_CONFIG_HOME:-$HOME/.config}/moat/config.json"
    [[ -r $cfg ]] || return 0
    # Server names are the keys of "servers"; jq when present, else the
    # layout moat writes (two-space indent, one server object per key).
    if command -v jq >/dev/null 2>&1; then
        jq -r '.servers | keys[]' "$cfg" 2>/dev/null
    else
        sed -n 's/^    "\([A-Za-z0-9._:-]*\)": {$/\1/p' "$cfg"
    fi
}

# Names from a moat list command's JSON ("ws" gives NAME, and OWNER/NAME
# for other owners' workspaces; "template" gives names). Needs jq; quiet
# when not logged in or offline.
_moat_names()
{
    command -v jq >/dev/null 2>&1 || return 0
    case $1 in
        ws)
            moat ws list --json 2>/dev/null |
                jq -r '.[] | .name' 2>/dev/null ;;
        template)
            moat template list --json 2>/dev/null |
                jq -r '.[].name' 2>/dev/null ;;
        recording)
            moat recording list --json 2>/dev/null |
                jq -r '.[].id' 2>/dev/null ;;
        session)
            moat session list --json 2>/dev/null |
                jq -r '.[].id' 2>/dev/null ;;
    esac
}

_moat()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="login logout whoami use token user sshkey secret ws ssh port-forward config-ssh template policy audit recording session version help"
    local roles="owner admin template-admin auditor security-officer member"

    if (( cword == 1 )); then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    local cmd=${words[1]} sub=${words[2]:-}
    local opts="" subs=""

    case $prev in
        --ca-file|--startup-script|--ssh-config|-F|--output)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -o)
            if [[ $cmd == recording ]]; then
                COMPREPLY=($(compgen -f -- "$cur")); return
            fi ;;
        --workspace|-w)
            if [[ $cmd == recording ]]; then
                COMPREPLY=($(compgen -W "$(_moat_names ws)" -- "$cur")); return
            fi ;;
        --user)
            return ;;
        --template|-t)
            if [[ $cmd == ws ]]; then
                COMPREPLY=($(compgen -W "$(_moat_names template)" -- "$cur")); return
            fi ;;
        --idle-timeout)
            COMPREPLY=($(compgen -W "0 30m 1h 2h 8h" -- "$cur")); return ;;
        --owner|--image|--cpu|--memory|--disk|--root-disk|--egress-policy|--port)
            return ;;
        --role)
            COMPREPLY=($(compgen -W "$roles" -- "$cur")); return ;;
        --expires-in)
            COMPREPLY=($(compgen -W "1h 12h 1d 7d 30d 90d" -- "$cur")); return ;;
        --since)
            COMPREPLY=($(compgen -W "10m 1h 1d" -- "$cur")); return ;;
        --username|-u|--name|--totp|--insecure-trust-fingerprint|--env|--type|--limit|-n|--key)
            return ;;
    esac

    case $cmd in
        login)
            opts="--username --password-stdin --ca-file --name --totp --expires-in --insecure-trust-fingerprint --help" ;;
        logout)
            opts="--forget --help"
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(_moat_servers)" -- "$cur")); return
            fi ;;
        whoami)
            opts="--json --help" ;;
        use)
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(_moat_servers)" -- "$cur")); return
            fi
            opts="--help" ;;
        help)
            COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
        token)
            subs="create list revoke"
            case $sub in
                create) opts="--expires-in --role --json --help" ;;
                list) opts="--json --help" ;;
                revoke) opts="--yes --help" ;;
            esac ;;
        user)
            subs="create list show disable enable roles"
            case $sub in
                create) opts="--role --password-stdin --help" ;;
                list|show) opts="--json --help" ;;
                disable) opts="--yes --help" ;;
                enable) opts="--help" ;;
                roles)
                    if (( cword > 3 )) && [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -W "$roles" -- "$cur")); return
                    fi
                    opts="--help" ;;
            esac ;;
        sshkey)
            subs="add list remove"
            case $sub in
                add)
                    opts="--name --help"
                    if [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -f -X '!*.pub' -- "$cur") $(compgen -d -- "$cur")); return
                    fi ;;
                list) opts="--json --help" ;;
                remove) opts="--yes --help" ;;
            esac ;;
        secret)
            subs="set list rm"
            case $sub in
                set) opts="--env --help" ;;
                list) opts="--json --help" ;;
                rm) opts="--yes --help" ;;
            esac ;;
        policy)
            subs="list get set delete"
            case $sub in
                list) opts="--json --help" ;;
                get) opts="--help" ;;
                set)
                    if (( cword == 4 )) && [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -f -- "$cur")); return
                    fi
                    opts="--help" ;;
                delete) opts="--yes --help" ;;
            esac ;;
        ws)
            subs="create list show start stop restart delete logs events stats"
            case $sub in
                create) opts="--template --owner --wait --help" ;;
                list) opts="--owner --all --json --help" ;;
                show|stats) opts="--json --help" ;;
                start|stop|restart) opts="--wait --help" ;;
                delete) opts="--wait --yes --help" ;;
                logs) opts="--follow --help" ;;
                events) opts="--help" ;;
            esac
            if [[ $sub != create && $sub != list ]] && (( cword == 3 )) && [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(_moat_names ws)" -- "$cur")); return
            fi ;;
        template)
            subs="list show create delete"
            case $sub in
                list|show) opts="--json --help" ;;
                create) opts="--image --cpu --memory --disk --root-disk --env --startup-script --egress-policy --idle-timeout --port --forbid-sudo --help" ;;
                delete) opts="--yes --help" ;;
            esac
            if [[ $sub == show || $sub == delete ]] && (( cword == 3 )) && [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(_moat_names template)" -- "$cur")); return
            fi ;;
        ssh)
            # After "--" comes the remote command: nothing to complete.
            local w
            for w in "${words[@]:2:cword-2}"; do
                [[ $w == -- ]] && { COMPREPLY=(); return; }
            done
            opts="--tty -t --dry-run --help"
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(_moat_names ws)" -- "$cur")); return
            fi ;;
        port-forward)
            opts="--dry-run --help"
            if (( cword == 2 )) && [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(_moat_names ws)" -- "$cur")); return
            fi ;;
        config-ssh)
            opts="--ssh-config --dry-run --remove --help" ;;
        recording)
            subs="list get"
            case $sub in
                list) opts="--user --workspace --limit --json --help" ;;
                get)
                    opts="--output -o --help"
                    if (( cword == 3 )) && [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -W "$(_moat_names recording)" -- "$cur")); return
                    fi ;;
            esac ;;
        session)
            subs="list end"
            case $sub in
                list) opts="--json --help" ;;
                end)
                    opts="--yes --help"
                    if (( cword == 3 )) && [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -W "$(_moat_names session)" -- "$cur")); return
                    fi ;;
            esac ;;
        audit)
            subs="tail verify"
            case $sub in
                tail) opts="--type --since --limit --follow --json --help" ;;
                verify)
                    opts="--key --json --help"
                    if [[ $cur != -* ]]; then
                        COMPREPLY=($(compgen -f -- "$cur")); return
                    fi ;;
            esac ;;
    esac

    if [[ -n $subs ]] && (( cword == 2 )); then
        COMPREPLY=($(compgen -W "$subs --help" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}

complete -F _moat moat
