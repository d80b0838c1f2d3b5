/* `membrane completion bash|zsh|fish`: shell completion generated from the command tree itself,
 * so every noun, verb and flag the CLI has is offered and none it lacks.
 *   bash: source <(membrane completion bash)
 *   zsh:  source <(membrane completion zsh)     (through zsh's bash completion layer)
 *   fish: membrane completion fish | source */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { UserError } from '../errors.js';

interface Node {
  /** Words before it: "" for the program, "endpoint", "endpoint add", ... */
  path: string;
  commands: string[];
  options: string[];
}

function walk(cmd: CommandUnknownOpts, path = ''): Node[] {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const options = [...cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))), '--help'];
  const here: Node = { path, commands: subs.flatMap((c) => [c.name(), ...c.aliases()]), options };
  return [here, ...subs.flatMap((c) => [c.name(), ...c.aliases()].flatMap((n) => walk(c, path ? `${path} ${n}` : n)))];
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function bash(nodes: Node[]): string {
  const cases = (pick: (n: Node) => string[]) => nodes.map((n) => `    ${quote(n.path)}) echo ${quote(pick(n).join(' '))} ;;`).join('\n');
  return `# membrane completion for bash (source <(membrane completion bash))
_membrane_commands() {
  case "$1" in
${cases((n) => n.commands)}
  esac
}
_membrane_words() {
  case "$1" in
${cases((n) => [...n.commands, ...n.options])}
  esac
}
_membrane() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case " $(_membrane_commands "$path") " in *" $w "*) path="\${path:+$path }$w" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_membrane_words "$path")" -- "$cur"))
}
complete -o default -F _membrane membrane
`;
}

function fish(nodes: Node[]): string {
  const lines = ['# membrane completion for fish (membrane completion fish | source)', 'complete -c membrane -f'];
  for (const n of nodes) {
    const seen = n.path ? n.path.split(' ').map((w) => `__fish_seen_subcommand_from ${w}`) : [];
    const deeper = n.commands.length ? [`not __fish_seen_subcommand_from ${n.commands.join(' ')}`] : [];
    const cond = [...(n.path ? seen : ['__fish_use_subcommand']), ...(n.path ? deeper : [])].join('; and ');
    if (n.commands.length) lines.push(`complete -c membrane -n ${quote(cond)} -a ${quote(n.commands.join(' '))}`);
    for (const o of n.options) {
      const flag = o.startsWith('--') ? `-l ${o.slice(2)}` : `-s ${o.slice(1)}`;
      lines.push(`complete -c membrane -n ${quote(cond)} ${flag}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function completionCommand(program: CommandUnknownOpts): CommandUnknownOpts {
  return new Command('completion')
    .argument('<shell>', 'bash, zsh or fish')
    .description('print shell completion for bash, zsh or fish')
    .addHelpText('after', '\nExamples:\n  source <(membrane completion bash)    # in ~/.bashrc\n  membrane completion fish | source')
    .action((shell) => {
      const nodes = walk(program);
      if (shell === 'bash') process.stdout.write(bash(nodes));
      else if (shell === 'zsh') process.stdout.write(`# membrane completion for zsh (source <(membrane completion zsh))\nautoload -U +X bashcompinit && bashcompinit\n${bash(nodes)}`);
      else if (shell === 'fish') process.stdout.write(fish(nodes));
      else throw new UserError('invalid', `completion ${JSON.stringify(shell)}: choose bash, zsh or fish`);
    });
}
