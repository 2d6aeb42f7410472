using System.Net.WebSockets;
using System.Text;
using ReaperProxy.EchoBackend;

// `client URL [MESSAGE] [--wait-close SECONDS]`: a one-shot WebSocket client, so the demo can prove the path
// works without a browser. With --wait-close it then keeps the connection open until the server closes it
// (printing the close status it got, e.g. 1001 from a proxy shutting down) or SECONDS pass (exit 1).
if (args.Length >= 2 && args[0] == "client")
{
    var waitClose = Array.IndexOf(args, "--wait-close");
    var rest = waitClose < 0 ? args[2..] : args[2..waitClose];
    TimeSpan? wait = waitClose >= 0 && waitClose + 1 < args.Length && int.TryParse(args[waitClose + 1], out var seconds) && seconds > 0
        ? TimeSpan.FromSeconds(seconds)
        : null;
    if (waitClose >= 0 && wait is null)
    {
        Console.Error.WriteLine("usage: client URL [MESSAGE] [--wait-close SECONDS]");
        return 2;
    }

    return await RunClientAsync(new Uri(args[1]), rest.Length > 0 ? rest[0] : "hello through ReaperProxy", wait);
}

var app = EchoApp.Build(args);
await app.StartAsync();
Console.WriteLine($"Echo backend listening on {string.Join(", ", app.Urls)} (WebSocket at /echo)");
await app.WaitForShutdownAsync();
return 0;

static async Task<int> RunClientAsync(Uri uri, string message, TimeSpan? waitClose)
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
        if (waitClose is { } wait)
        {
            Console.WriteLine($"sent '{message}' to {uri}, got '{echo}' back; waiting up to {wait.TotalSeconds:0} s for the server to close");
            return echo == message ? await WaitForCloseAsync(socket, buffer, wait) : 1;
        }

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

static async Task<int> WaitForCloseAsync(ClientWebSocket socket, byte[] buffer, TimeSpan wait)
{
    using var timeout = new CancellationTokenSource(wait);
    try
    {
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, timeout.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                Console.WriteLine($"server closed: {(int?)result.CloseStatus} {result.CloseStatusDescription}");

                // Complete the closing handshake, answering with the server's own code.
                await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.Empty, null, timeout.Token);
                return 0;
            }
        }
    }
    catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
    {
        Console.Error.WriteLine($"no Close from the server ({ex.Message})");
        return 1;
    }
}
