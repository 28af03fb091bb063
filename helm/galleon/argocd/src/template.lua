-- Argo CD health check for galleon.dev/@KIND@ (argocd-cm key
-- resource.customizations.health.galleon.dev_@KIND@). See docs/gitops.md.
-- Base and table functions only: Argo CD gives argocd-cm scripts no string or math library.
-- @GENERATED@
-- @DESCRIPTION@
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function explain(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

-- The operator has not acted on this spec yet: nothing in status describes it.
local function unobserved()
  local generation = obj.metadata.generation
  local observed = nil
  if obj.status ~= nil then
    observed = obj.status.observedGeneration
  end
  if obj.status ~= nil and (generation == nil or (observed ~= nil and observed >= generation)) then
    return nil
  end
  if generation == nil then
    return "waiting for the operator to report status"
  end
  return "waiting for the operator to observe generation " .. tostring(generation)
end

-- @BODY@

-- Every kind: until the operator has observed this generation, the status describes
-- an older spec (or nothing), so the object is Progressing whatever it says.
local waiting = unobserved()
if waiting ~= nil then
  hs.status, hs.message = "Progressing", waiting
else
  hs.status, hs.message = health()
end
return hs
