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
    local commands="setup login logout whoami passwd 2fa user invite member session token project app env db deploy rollback deployments deployment cancel ps logs start stop restart exec describe metrics git webhooks previews domain cert proxy backup settings users audit secrets completion daemon"
    local roles="owner admin developer viewer"
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
        --cert|--key|--private-key-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --clear)
            COMPREPLY=($(compgen -W "dockerfile port publish start_command build_command install_command memory cpus health volumes" -- "$cur"))
            return
            ;;
        --role)
            COMPREPLY=($(compgen -W "$roles" -- "$cur"))
            return
            ;;
        --project-role)
            COMPREPLY=($(compgen -W "admin developer viewer" -- "$cur"))
            return
            ;;
        --scope)
            COMPREPLY=($(compgen -W "read deploy admin" -- "$cur"))
            return
            ;;
        --engine|-e)
            COMPREPLY=($(compgen -W "postgres mysql mariadb redis mongo" -- "$cur"))
            return
            ;;
        --persistence)
            COMPREPLY=($(compgen -W "rdb aof none" -- "$cur"))
            return
            ;;
        --kind|--webhook-kind)
            COMPREPLY=($(compgen -W "github gitlab gitea" -- "$cur"))
            return
            ;;
        --host|--git|--branch|--port|--publish|--memory|--cpus|--volume|--start-command|--build-command|--install-command|--health-path|--health-interval|--health-retries|--health-start-period|--description|--tag|--add|--remove|--ref|--to|--limit|--tail|--since|--until|--username|--user|--email|--totp|--fingerprint|--reassign-to|--expires-hours|--expires-days|--hsts|--path-prefix|--header|--remove-header|--project|--action|--filter|--provider|--repo|--url|--api-url|--app-id|--installation-id|--organization|--preview-limit|--preview-domain|--preview-env|--preview-env-unset|--into|--confirm|--cron|--timezone|--keep-last|--keep-days|--keep-daily|--keep-weekly|--keep-monthly|--bucket|--endpoint|--region|--prefix|--path|--version|--public-port|--as|-u|-d|-t|-n|-p)
            return
            ;;
    esac

    # The command, sub-command and action are the first words that are not options or option values.
    local cmd="" sub="" action="" i w
    for ((i = 1; i < cword; i++)); do
        w="${words[i]}"
        case "$w" in
            --host|--data) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z "$cmd" ]]; then cmd="$w"
                elif [[ -z "$sub" ]]; then sub="$w"
                elif [[ -z "$action" ]]; then action="$w"
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
        2fa) subs="enable disable" ;;
        user) subs="create list show set-role delete" ;;
        invite) subs="create list revoke accept" ;;
        member) subs="add remove list" ;;
        session) subs="list revoke" ;;
        token) subs="create list revoke" ;;
        project) subs="create list show rename tag delete" ;;
        app) subs="create list show set delete deploy-key source" ;;
        env) subs="set list unset import export" ;;
        db) subs="create list show delete start stop restart logs url link unlink shell users create-user drop-user update upgrade" ;;
        deployment) subs="show log" ;;
        git) subs="provider repos branches" ;;
        domain) subs="add set remove list" ;;
        cert) subs="status renew upload" ;;
        proxy) subs="status install reload" ;;
        backup) subs="list show run verify restore delete schedule destination" ;;
        settings) subs="list get set" ;;
        secrets) subs="rotate-key" ;;
        completion) subs="bash zsh" ;;
        setup) opts="$opts --username --password-stdin --fingerprint" ;;
        login) opts="$opts --username --password-stdin --totp --fingerprint" ;;
        passwd) opts="$opts --password-stdin --revoke-tokens" ;;
        deploy) opts="$opts --ref --wait" ;;
        rollback) opts="$opts --to --wait" ;;
        deployments|webhooks) opts="$opts --limit" ;;
        ps) opts="$opts --all" ;;
        logs) opts="$opts --follow --tail --since --timestamps" ;;
        exec) opts="$opts --tty -t --no-tty -T" ;;
        metrics) opts="$opts --follow" ;;
        audit) opts="$opts --user --project --action --since --until --limit --jsonl" ;;
    esac

    if [[ -n "$subs" && -z "$sub" ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return
    fi
    if [[ "$cmd $sub" == "git provider" && -z "$action" ]]; then
        COMPREPLY=($(compgen -W "add list remove" -- "$cur"))
        return
    fi
    if [[ "$cmd $sub" == "git provider" ]]; then
        sub="provider $action"
    fi
    if [[ "$cmd" == "backup" && ( "$sub" == "schedule" || "$sub" == "destination" ) ]]; then
        if [[ -z "$action" ]]; then
            COMPREPLY=($(compgen -W "list add remove" -- "$cur"))
            return
        fi
        sub="$sub $action"
    fi

    case "$cmd $sub" in
        "2fa disable") opts="$opts --password-stdin" ;;
        "backup list") opts="$opts --database --limit" ;;
        "backup run") opts="$opts --database --to --no-wait" ;;
        "backup verify") opts="$opts --no-wait" ;;
        "backup restore") opts="$opts --into --confirm --no-wait" ;;
        "backup delete"|"backup destination remove") opts="$opts --yes" ;;
        "backup schedule add") opts="$opts --database --to --cron --timezone --no-verify --keep-last --keep-days --keep-daily --keep-weekly --keep-monthly" ;;
        "backup destination add") opts="$opts --path --bucket --endpoint --region --prefix --encrypt" ;;
        "user create") opts="$opts --role --email --password-stdin" ;;
        "user delete") opts="$opts --reassign-to --yes" ;;
        "invite create") opts="$opts --username --email --role --project --project-role --expires-hours" ;;
        "invite accept") opts="$opts --username --email --password-stdin --fingerprint" ;;
        "session list") opts="$opts --user --all" ;;
        "token create") opts="$opts --scope --project --expires-days --no-expiry" ;;
        "token list") opts="$opts --all" ;;
        "project create") opts="$opts --description --tag" ;;
        "project list") opts="$opts --filter" ;;
        "app list") opts="$opts --filter --project" ;;
        "project tag") opts="$opts --add --remove" ;;
        "project delete"|"app delete"|"domain remove"|"git provider remove") opts="$opts --yes" ;;
        "domain add") opts="$opts $domain_opts" ;;
        "domain set") opts="$opts $domain_opts --https --security-headers --remove-header --clear-headers" ;;
        "cert upload") opts="$opts --cert --key" ;;
        "app create") opts="$opts $app_opts --provider --repo" ;;
        "app set") opts="$opts $app_opts --health-none --clear" ;;
        "app deploy-key") opts="$opts --regenerate" ;;
        "app source") opts="$opts --token-stdin --no-token --provider --repo --unlink --forget-host-keys --webhook-kind --new-webhook-secret --deploy-on-push --no-deploy-on-push --deploy-tags --no-deploy-tags --previews --no-previews --preview-limit --preview-domain --preview-env --preview-env-unset --preview-secrets --no-preview-secrets --reveal" ;;
        "git provider add") opts="$opts --kind --github-manifest --url --api-url --token-stdin --app-id --private-key-file --webhook-secret-stdin --installation-id --organization" ;;
        "env set"|"env import") opts="$opts --secret --build" ;;
        "env list"|"env export") opts="$opts --reveal" ;;
        "deployment log") opts="$opts --follow" ;;
        "db create") opts="$opts --engine --version --persistence --memory --cpus --restart --public-port" ;;
        "db list") opts="$opts --project" ;;
        "db delete") opts="$opts --keep-volume --yes" ;;
        "db logs") opts="$opts --follow --tail --since --timestamps" ;;
        "db link") opts="$opts --as" ;;
        "db shell") opts="$opts --tty --no-tty" ;;
        "db create-user") opts="$opts --password-stdin" ;;
        "db drop-user") opts="$opts --yes" ;;
        "db update") opts="$opts --memory --cpus --restart --public-port --no-public-port" ;;
        "db upgrade") opts="$opts --version" ;;
    esac

    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ "$cmd $sub" == "env import" ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ "$cmd $sub" == "user set-role" ]]; then
        COMPREPLY=($(compgen -W "$roles" -- "$cur"))
    elif [[ "$cmd $sub" == "member add" ]]; then
        COMPREPLY=($(compgen -W "admin developer viewer" -- "$cur"))
    fi
}

complete -F _mist mist
