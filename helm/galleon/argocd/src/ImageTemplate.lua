-- In order: Stalled=True is Degraded (the operator cannot build from this spec);
-- Ready=True is Healthy; a most recent build (status.lastBuild) that failed is
-- Degraded (nothing builds again until the spec or the source changes); anything
-- else is Progressing, with the phase of the most recent build when one runs.

local function health()
  local stalled = condition("Stalled")
  if stalled ~= nil and stalled.status == "True" then
    return "Degraded", explain(stalled, "Stalled")
  end

  local ready = condition("Ready")
  if ready ~= nil and ready.status == "True" then
    return "Healthy", explain(ready, "Ready")
  end

  local last = obj.status.lastBuild
  if last ~= nil and last.phase == "Failed" then
    return "Degraded", explain(ready, "build " .. tostring(last.name) .. " failed")
  end
  if last ~= nil and last.phase ~= nil and last.phase ~= "Succeeded" then
    local said = explain(ready, "")
    if said ~= "" then
      return "Progressing", said .. " (" .. last.phase .. ")"
    end
    return "Progressing", "build " .. tostring(last.name) .. ": " .. last.phase
  end
  return "Progressing", explain(ready, "waiting for the first build")
end
