using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ReaperProxy.LoadTest;

/// <summary>
/// The backend for the load tests: Kestrel, one WebSocket endpoint that echoes each message as one frame
/// and otherwise keeps a receive pending (so it answers the proxy's pings). Its per-connection buffer
/// starts at 1 KiB and grows to the largest message seen, so 9,000 idle connections cost it little.
/// <c>/bulk?size=N[&amp;frame=F]</c> sends one binary message of N bytes as fast as the connection takes it
/// (one frame, or frames of F bytes), for the slow-reader measurements.
/// <para><c>--h2 PORT</c> adds a cleartext HTTP/2-only endpoint (h2c, prior knowledge) on 127.0.0.1:PORT,
/// where a WebSocket arrives as extended CONNECT (RFC 8441). <c>/slow?rate=N&amp;step=M&amp;duration=S&amp;id=ID</c>
/// (on either endpoint) reads the client's upload at N bytes/s, M bytes per receive, with a receive
/// pending while it reads (so pings are answered), and appends one JSON line per connection to
/// <c>--results FILE</c> (stdout when not given).</para>
/// </summary>
internal static class Backend
{
    private const int MaxMessage = 16 * 1024 * 1024;
    private const int MaxBulk = 1 << 30;
    private static readonly Lock s_zerosGate = new();
    private static byte[] s_zeros = [];
    private static long s_open;
    private static long s_accepted;
    private static long s_messages;

    public static async Task<int> RunAsync(Options options)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls(options.Get("urls", "http://127.0.0.1:5090"));
        var h2Port = options.Get("h2") is null ? (int?)null : options.Int("h2", 0, min: 1, max: 65535);
        var results = options.Get("results");
        var windows = "";
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxConcurrentConnections = null;
            k.Limits.MaxConcurrentUpgradedConnections = null;
            if (h2Port is { } port)
            {
                if (options.Get("h2-connection-window") is not null)
                {
                    k.Limits.Http2.InitialConnectionWindowSize = options.Int("h2-connection-window", 0, min: 65535);
                }

                windows = $"; HTTP/2 InitialStreamWindowSize {k.Limits.Http2.InitialStreamWindowSize}, InitialConnectionWindowSize {k.Limits.Http2.InitialConnectionWindowSize}, MaxFrameSize {k.Limits.Http2.MaxFrameSize}";
                // Explicit listen options replace UseUrls: listen on the HTTP/1.1 address too.
                var http1 = new Uri(options.Get("urls", "http://127.0.0.1:5090").Split(';')[0]);
                k.Listen(IPAddress.Parse(http1.Host), http1.Port);
                k.Listen(IPAddress.Loopback, port, o => o.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
            }
        });

        var app = builder.Build();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        app.MapGet("/stats", () => Results.Json(new BackendStats(Interlocked.Read(ref s_open), Interlocked.Read(ref s_accepted), Interlocked.Read(ref s_messages)), JsonContext.Default.BackendStats));
        app.Map("/ws", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref s_accepted);
            Interlocked.Increment(ref s_open);
            try
            {
                await EchoAsync(socket, context.RequestAborted);
            }
            finally
            {
                Interlocked.Decrement(ref s_open);
            }
        });

        // For the churn: echo the first message's first half as a non-final frame, then abort the
        // connection (a backend that crashes mid-message; the proxy must end the client's side).
        app.Map("/abort", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref s_accepted);
            var buffer = new byte[64 * 1024];
            try
            {
                var result = await socket.ReceiveAsync(buffer.AsMemory(), context.RequestAborted);
                if (result.MessageType != WebSocketMessageType.Close)
                {
                    await socket.SendAsync(buffer.AsMemory(0, Math.Max(1, result.Count / 2)), WebSocketMessageType.Binary, endOfMessage: false, context.RequestAborted);
                }
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                // The client went first.
            }

            context.Abort();
        });

        app.Map("/bulk", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest ||
                !int.TryParse(context.Request.Query["size"], out var size) || size < 1 || size > MaxBulk)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            var frame = int.TryParse(context.Request.Query["frame"], out var f) && f > 0 && f < size ? f : size;
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref s_accepted);
            Interlocked.Increment(ref s_open);
            try
            {
                await BulkAsync(socket, size, frame, context.RequestAborted);
            }
            finally
            {
                Interlocked.Decrement(ref s_open);
            }
        });

        app.Map("/slow", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            var q = context.Request.Query;
            var rate = double.TryParse(q["rate"], NumberStyles.Float, CultureInfo.InvariantCulture, out var r) && r > 0 ? r : 2048;
            var step = int.TryParse(q["step"], out var st) && st > 0 ? Math.Min(st, 65536) : Math.Clamp((int)(rate / 16), 1, 1024);
            var duration = double.TryParse(q["duration"], NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d > 0 ? d : 30;
            var protocol = context.Request.Protocol;
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var (end, at, read) = await SlowReadAsync(socket, rate, step, TimeSpan.FromSeconds(duration), context.RequestAborted);
            var line = System.Text.Json.JsonSerializer.Serialize(new SlowReaderResult
            {
                Id = q["id"].ToString(),
                Direction = "upload-backend",
                Url = $"{protocol} {context.Request.Method} {context.Request.Path}{context.Request.QueryString}",
                Rate = (int)rate,
                Step = step,
                DurationSeconds = duration,
                Survived = end == "duration",
                End = end,
                EndedAtSeconds = Math.Round(at, 3),
                BytesRead = read,
                AchievedRate = Math.Round(read / Math.Max(at, 0.001), 1),
            }, JsonContext.Default.SlowReaderResult);
            lock (s_zerosGate)
            {
                if (results is null)
                {
                    Console.Out.WriteLine(line);
                    Console.Out.Flush();
                }
                else
                {
                    File.AppendAllText(results, line + "\n");
                }
            }
        });

        await app.StartAsync();
        Console.Error.WriteLine($"backend listening on {string.Join(", ", app.Urls)}{(h2Port is { } h2 ? $", h2c on 127.0.0.1:{h2}" : "")} (WebSocket echo at /ws){windows}");
        await app.WaitForShutdownAsync();
        return 0;
    }

    // Sends SIZE bytes in frames of FRAME bytes (all of them at once when FRAME == SIZE) while a receive
    // is pending, so pings are answered and a Close ends it.
    private static async Task BulkAsync(WebSocket socket, int size, int frame, CancellationToken cancellationToken)
    {
        byte[] zeros;
        lock (s_zerosGate)
        {
            if (s_zeros.Length < frame)
            {
                s_zeros = new byte[frame];
            }

            zeros = s_zeros;
        }

        using var done = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var receive = Task.Run(async () =>
        {
            var scratch = new byte[1024];
            while (true)
            {
                var result = await socket.ReceiveAsync(scratch.AsMemory(), done.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }
            }
        }, CancellationToken.None);
        try
        {
            for (var sent = 0; sent < size && !receive.IsCompleted;)
            {
                var length = Math.Min(frame, size - sent);
                sent += length;
                await socket.SendAsync(zeros.AsMemory(0, length), WebSocketMessageType.Binary, endOfMessage: sent == size, done.Token);
            }

            await receive;
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The peer went away, or was cut by the proxy.
        }
        finally
        {
            await done.CancelAsync();
            try
            {
                await receive;
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                // Ended with the connection.
            }
        }
    }

    // Reads STEP bytes at a time, no faster than RATE bytes/s on an absolute schedule, until DURATION is
    // over or the connection ends. Each ReceiveAsync handles (answers) pings that arrive meanwhile.
    private static async Task<(string End, double At, long Read)> SlowReadAsync(WebSocket socket, double rate, int step, TimeSpan duration, CancellationToken aborted)
    {
        var buffer = new byte[step];
        var clock = Stopwatch.StartNew();
        using var done = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        done.CancelAfter(duration);
        var read = 0L;
        try
        {
            while (true)
            {
                var due = TimeSpan.FromSeconds((read + step) / rate) - clock.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, done.Token);
                }

                var result = await socket.ReceiveAsync(buffer.AsMemory(), done.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return ($"close {(int?)socket.CloseStatus} {socket.CloseStatusDescription}", clock.Elapsed.TotalSeconds, read);
                }

                read += result.Count;
            }
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            return ("duration", clock.Elapsed.TotalSeconds, read);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            return ($"aborted: {ex.GetType().Name}", clock.Elapsed.TotalSeconds, read);
        }
    }

    private static async Task EchoAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[1024];
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                while (true)
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= MaxMessage)
                        {
                            await socket.CloseAsync(WebSocketCloseStatus.MessageTooBig, "too big", cancellationToken);
                            return;
                        }

                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    result = await socket.ReceiveAsync(buffer.AsMemory(count), cancellationToken);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        await socket.CloseOutputAsync(socket.CloseStatus ?? WebSocketCloseStatus.NormalClosure, socket.CloseStatusDescription, cancellationToken);
                        return;
                    }

                    count += result.Count;
                    if (result.EndOfMessage)
                    {
                        break;
                    }
                }

                await socket.SendAsync(buffer.AsMemory(0, count), result.MessageType, endOfMessage: true, cancellationToken);
                Interlocked.Increment(ref s_messages);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The peer went away without a closing handshake.
        }
    }
}

internal sealed record BackendStats(long Open, long Accepted, long Messages);
