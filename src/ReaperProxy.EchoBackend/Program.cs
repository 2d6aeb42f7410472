using System.Net.WebSockets;
using System.Text;
using ReaperProxy.EchoBackend;

// `client URL [MESSAGE]`: a one-shot WebSocket client, so the demo can prove the path works without a browser.
if (args.Length >= 2 && args[0] == "client")
{
    return await RunClientAsync(new Uri(args[1]), args.Length > 2 ? args[2] : "hello through ReaperProxy");
}

var app = EchoApp.Build(args);
await app.StartAsync();
Console.WriteLine($"Echo backend listening on {string.Join(", ", app.Urls)} (WebSocket at /echo)");
await app.WaitForShutdownAsync();
return 0;

static async Task<int> RunClientAsync(Uri uri, string message)
{
    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
    using var socket = new ClientWebSocket();
    try
    {
        await socket.ConnectAsync(uri, timeout.Token);
        await socket.SendAsync(Encoding.UTF8.GetBytes(message), WebSocketMessageType.Text, true, timeout.Token);
        var buffer = new byte[64 * 1024];
        var result = await socket.ReceiveAsync(buffer, timeout.Token);
        var echo = Encoding.UTF8.GetString(buffer, 0, result.Count);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Console.WriteLine($"sent '{message}' to {uri}, got '{echo}' back");
        return echo == message ? 0 : 1;
    }
    catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or HttpRequestException)
    {
        Console.Error.WriteLine($"WebSocket to {uri} failed: {ex.Message}");
        return 1;
    }
}
