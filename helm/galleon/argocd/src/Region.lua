-- Ready=True is Healthy; Ready=False (no Ready node in the region, a registry that
-- does not answer) is Degraded; no Ready condition yet is Progressing.

local function health()
  local ready = condition("Ready")
  if ready ~= nil and ready.status == "True" then
    return "Healthy", explain(ready, "Ready")
  end
  if ready ~= nil and ready.status == "False" then
    return "Degraded", explain(ready, "not Ready")
  end
  return "Progressing", explain(ready, "waiting for the first check of the region")
end
