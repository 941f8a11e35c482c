-- wrk: Meta's send request to the single endpoint, a template to each of 90,000 opted-in
-- recipients in turn (the set-up of server-load.sh), like loadgen's plain model.
local i = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench-tenant-token-00"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  local body = string.format('{"messaging_product":"whatsapp","to":"+1650%07d","type":"template","template":{"name":"order_update","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"order %d"}]}]}}', i % 90000, i)
  return wrk.format(nil, "/v23.0/2000001/messages", nil, body)
end
