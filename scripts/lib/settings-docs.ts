/**
 * The README's tables of settings, made from the settings' one definition each: the relay's in the
 * root README, the host agent's in packages/host/README.md, each between a pair of markers.
 * `npm run settings-table` writes them; a test fails when a README lags behind the code.
 */
import { Setting } from "@effect-relay/protocol"
import { hostAgentSettings, hostProcessSettings } from "../../packages/host/src/HostSettings.js"
import { relaySettings } from "../../packages/relay/src/config/RelaySettings.js"

export interface SettingsSection {
  readonly file: string
  readonly marker: string
  readonly table: string
}

/** Built-in flags of every command (from @effect/cli), listed after the settings. */
const builtIn = "| `--log-level` | `LOG_LEVEL` | info | trace, debug, info, warning, error (built into the CLI) |"

export const sections: ReadonlyArray<SettingsSection> = [
  { file: "README.md", marker: "settings:relay", table: `${Setting.markdownTable(relaySettings)}\n${builtIn}` },
  {
    file: "packages/host/README.md",
    marker: "settings:host",
    table: `${Setting.markdownTable({ ...hostAgentSettings, ...hostProcessSettings })}\n${builtIn}`
  }
]

const begin = (marker: string) => `<!-- ${marker}: made by npm run settings-table, edit the settings instead -->`
const end = (marker: string) => `<!-- /${marker} -->`

/** `text` with the section's table between its markers; undefined when the markers are missing. */
export const withTable = (text: string, section: SettingsSection): string | undefined => {
  const from = text.indexOf(begin(section.marker))
  const to = text.indexOf(end(section.marker))
  if (from === -1 || to === -1 || to < from) return undefined
  return `${text.slice(0, from)}${begin(section.marker)}\n${section.table}\n${text.slice(to)}`
}
