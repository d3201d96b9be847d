#!/bin/bash
# Stand-in for the official nginx image's /docker-entrypoint.sh. It keeps the one feature
# project configs rely on: /etc/nginx/templates/*.template are rendered with envsubst into
# /etc/nginx/conf.d/ (only variables that are set are substituted, so nginx's own $vars
# survive), then the command runs as PID 1.
set -euo pipefail

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
    template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    if [ -d "$template_dir" ]; then
        # shellcheck disable=SC2016,SC2046 # a literal ${NAME} list, one word per variable
        defined_envs="$(printf '${%s} ' $(env | cut -d= -f1))"
        while IFS= read -r -d '' template; do
            relative="${template#"$template_dir/"}"
            output="$output_dir/${relative%"$suffix"}"
            mkdir -p "$(dirname "$output")"
            echo "$0: rendering $template to $output"
            envsubst "$defined_envs" <"$template" >"$output"
        done < <(find "$template_dir" -follow -type f -name "*$suffix" -print0)
    fi
    if [ -d /docker-entrypoint.d ]; then
        for script in /docker-entrypoint.d/*.sh; do
            [ -x "$script" ] || continue
            echo "$0: running $script"
            "$script"
        done
    fi
fi

exec "$@"
