using System.Net.WebSockets;

namespace ReaperProxy.EchoBackend;

/// <summary>
/// A sample WebSocket echo backend for the demo and the tests: <c>/echo</c> (WebSocket echo, text and
/// binary, HTTP/1.1 and HTTP/2), <c>/</c> (a page that talks to <c>/echo</c> through whatever serves it),
/// <c>/hello</c> (GET) and <c>/post</c> (POST echo of the body).
/// </summary>
public static class EchoApp
{
    /// <summary>Builds the app; the caller starts it.</summary>
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        if (builder.Configuration["urls"] is null && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
        {
            builder.WebHost.UseUrls("http://127.0.0.1:5080");
        }

        var app = builder.Build();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });

        app.MapGet("/", () => Results.Content(Page, "text/html; charset=utf-8"));
        app.MapGet("/hello", (HttpContext ctx) => $"hello from the echo backend ({ctx.Request.Protocol})\n");
        app.MapPost("/post", async (HttpContext ctx) =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            return Results.Text(await reader.ReadToEndAsync(ctx.RequestAborted));
        });
        app.Map("/echo", async (HttpContext ctx) =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest)
            {
                ctx.Response.StatusCode = StatusCodes.Status400BadRequest;
                await ctx.Response.WriteAsync("this endpoint speaks WebSocket\n");
                return;
            }

            using var socket = await ctx.WebSockets.AcceptWebSocketAsync();
            await EchoAsync(socket, ctx.RequestAborted);
        });
        return app;
    }

    /// <summary>Echoes every message until the peer closes, then completes the closing handshake.</summary>
    public static async Task EchoAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, cancellationToken);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The peer went away without a closing handshake; nothing left to echo.
        }
    }

    private const string Page = """
        <!doctype html>
        <meta charset="utf-8">
        <title>ReaperProxy demo</title>
        <h1>ReaperProxy demo: WebSocket echo</h1>
        <p>This page connects to <code>/echo</code> on the host that served it.</p>
        <input id="msg" value="hello through the proxy" size="40"> <button id="send">send</button>
        <pre id="log"></pre>
        <script>
          const log = t => document.getElementById('log').textContent += t + '\n';
          const url = location.origin.replace(/^http/, 'ws') + '/echo';
          const ws = new WebSocket(url);
          ws.onopen = () => log('open ' + url);
          ws.onmessage = e => log('echo: ' + e.data);
          ws.onclose = e => log('closed ' + e.code + ' ' + e.reason);
          document.getElementById('send').onclick = () => ws.send(document.getElementById('msg').value);
        </script>
        """;
}
