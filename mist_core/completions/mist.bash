# bash completion for mist. Install: mist completion bash > /etc/bash_completion.d/mist
# (or: source <(mist completion bash) in ~/.bashrc).

_mist() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion || return
    else
        COMPREPLY=()
        cur="${COMP_WORDS[COMP_CWORD]}"
        prev="${COMP_WORDS[COMP_CWORD-1]}"
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local global_opts="--host --embedded --data --json --help"
    local commands="setup login logout whoami project app env deploy rollback deployments deployment cancel ps logs start stop restart metrics domain cert proxy settings users audit completion daemon"
    local domain_opts="--no-https --hsts --www --path-prefix --header --no-security-headers"
    local app_opts="--git --branch --dockerfile --context --port --publish --memory --cpus --restart --volume --start-command --build-command --install-command --health-path --health-tcp --health-docker --health-interval --health-retries --health-start-period"

    case "$prev" in
        --data|--dockerfile|--context)
            COMPREPLY=($(compgen -d -- "$cur"))
            return
            ;;
        --restart)
            COMPREPLY=($(compgen -W "no on-failure always unless-stopped" -- "$cur"))
            return
            ;;
        --www)
            COMPREPLY=($(compgen -W "redirect-to-apex redirect-to-www none" -- "$cur"))
            return
            ;;
        --cert|--key)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --clear)
            COMPREPLY=($(compgen -W "dockerfile port publish start_command build_command install_command memory cpus health volumes" -- "$cur"))
            return
            ;;
        --host|--git|--branch|--port|--publish|--memory|--cpus|--volume|--start-command|--build-command|--install-command|--health-path|--health-interval|--health-retries|--health-start-period|--description|--tag|--add|--remove|--ref|--limit|--tail|--since|--username|--user|--hsts|--path-prefix|--header|--remove-header|--project|--action|--filter|-u|-d|-t|-n|-p)
            return
            ;;
    esac

    # The command and sub-command are the first words that are not options or option values.
    local cmd="" sub="" i w
    for ((i = 1; i < cword; i++)); do
        w="${words[i]}"
        case "$w" in
            --host|--data) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z "$cmd" ]]; then cmd="$w"
                elif [[ -z "$sub" ]]; then sub="$w"
                fi
                ;;
        esac
    done

    if [[ -z "$cmd" ]]; then
        COMPREPLY=($(compgen -W "$commands $global_opts" -- "$cur"))
        return
    fi

    local subs="" opts="$global_opts"
    case "$cmd" in
        project) subs="create list show rename tag delete" ;;
        app) subs="create list show set delete" ;;
        env) subs="set list unset import export" ;;
        deployment) subs="show log" ;;
        domain) subs="add set remove list" ;;
        cert) subs="status renew upload" ;;
        proxy) subs="status install reload" ;;
        settings) subs="list get set" ;;
        completion) subs="bash zsh" ;;
        setup|login) opts="$opts --username --password-stdin" ;;
        deploy) opts="$opts --ref --wait" ;;
        rollback) opts="$opts --to --wait" ;;
        deployments) opts="$opts --limit" ;;
        ps) opts="$opts --all" ;;
        logs) opts="$opts --follow --tail --since --timestamps" ;;
        metrics) opts="$opts --follow" ;;
        audit) opts="$opts --user --project --action --limit" ;;
    esac

    if [[ -n "$subs" && -z "$sub" ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return
    fi

    case "$cmd $sub" in
        "project create") opts="$opts --description --tag" ;;
        "project list"|"app list") opts="$opts --filter --project" ;;
        "project tag") opts="$opts --add --remove" ;;
        "project delete"|"app delete"|"domain remove") opts="$opts --yes" ;;
        "domain add") opts="$opts $domain_opts" ;;
        "domain set") opts="$opts $domain_opts --https --security-headers --remove-header --clear-headers" ;;
        "cert upload") opts="$opts --cert --key" ;;
        "app create") opts="$opts $app_opts" ;;
        "app set") opts="$opts $app_opts --health-none --clear" ;;
        "env set"|"env import") opts="$opts --secret --build" ;;
        "env list"|"env export") opts="$opts --reveal" ;;
        "deployment log") opts="$opts --follow" ;;
    esac

    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ "$cmd $sub" == "env import" ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

complete -F _mist mist
