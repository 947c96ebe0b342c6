-- Sideman: tell sideman_import_take.lua where the host writes its request file.
--
-- Needed only when `sideman serve` runs with a --session folder other than the default
-- (~/.local/share/sideman/session) and REAPER does not see $SIDEMAN_SESSION. Enter the
-- host's session folder (or the request file itself); leave it empty to use the default.
-- The setting is kept across REAPER restarts (persistent ExtState "sideman"/"request_file").

local SECTION, KEY = "sideman", "request_file"

local current = reaper.GetExtState(SECTION, KEY)
local ok, answer = reaper.GetUserInputs("Sideman: host session folder", 1,
  "Session folder or request file:,extrawidth=300", current)
if ok then
  answer = answer:gsub("^%s+", ""):gsub("%s+$", ""):gsub("[/\\]$", "")
  if answer == "" then
    reaper.DeleteExtState(SECTION, KEY, true)
    reaper.ShowConsoleMsg("Sideman: using the default session folder\n")
  else
    if not answer:match("%.txt$") then answer = answer .. "/daw/reaper-request.txt" end
    reaper.SetExtState(SECTION, KEY, answer, true)
    reaper.ShowConsoleMsg("Sideman: takes are read from " .. answer .. "\n")
  end
end
