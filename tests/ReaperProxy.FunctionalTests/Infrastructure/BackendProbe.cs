using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Threading.Channels;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>How a backend WebSocket ended, as the backend application saw it.</summary>
public sealed record BackendOutcome(WebSocketCloseStatus? CloseStatus, string? CloseDescription, bool Aborted, DateTime At);

/// <summary>
/// Backend endpoints whose behaviour the relay tests need, and what the backend application observed:
/// <list type="bullet">
/// <item><c>/record</c>: echoes, and records the Close it receives (or that its connection was cut).</item>
/// <item><c>/silent</c>: accepts, then never reads again, so it never answers a ping or a Close.</item>
/// <item><c>/close-first</c>: accepts, then starts the closing handshake with 1000 and records when it completed.</item>
/// <item><c>/hang</c>: never answers the upgrade request.</item>
/// <item><c>/vanish</c>: takes one message, then drops its connection without a closing handshake.</item>
/// <item><c>/raw</c>: completes the upgrade by hand and hands the raw stream to the test (byte-exact checks).</item>
/// <item><c>/stream</c>: sends 64 KiB binary messages as fast as the path takes them (a download) and records the Close it receives;
/// <c>?total=BYTES</c> stops sending after that many bytes, <c>?delayMs=MS</c> starts sending that long after the upgrade.</item>
/// </list>
/// </summary>
public sealed class BackendProbe
{
    private readonly TaskCompletionSource<BackendOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<Stream> _raw = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<Stream> _rawStreams = Channel.CreateUnbounded<Stream>();
    private readonly TaskCompletionSource _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<DateTime> _closeCompleted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTime _closeStarted;

    /// <summary>Completes when a backend WebSocket ends.</summary>
    public Task<BackendOutcome> Outcome => _outcome.Task;

    /// <summary>Completes when the backend accepted a WebSocket.</summary>
    public Task Accepted => _accepted.Task;

    /// <summary>The raw upgraded stream of <c>/raw</c>.</summary>
    public Task<Stream> RawStream => _raw.Task;

    /// <summary>
    /// The raw upgraded streams of every <c>/raw</c> request, one per call in arrival order, for tests that
    /// open several in turn on one backend.
    /// </summary>
    public async Task<Stream> NextRawStreamAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        return await _rawStreams.Reader.ReadAsync(cts.Token);
    }

    /// <summary>When <c>/close-first</c>'s CloseAsync returned (the handshake completed, or was completed for it).</summary>
    public Task<DateTime> CloseCompleted => _closeCompleted.Task;

    /// <summary>When <c>/close-first</c> called CloseAsync.</summary>
    public DateTime CloseStarted => _closeStarted;

    /// <summary>Maps the endpoints onto a test backend.</summary>
    public void Map(WebApplication app)
    {
        app.Map("/record", async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            _accepted.TrySetResult();
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var result = await socket.ReceiveAsync(buffer, context.RequestAborted);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        _outcome.TrySetResult(new(result.CloseStatus, result.CloseStatusDescription, false, DateTime.UtcNow));
                        await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, CancellationToken.None);
                        return;
                    }

                    await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, context.RequestAborted);
                }
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                _outcome.TrySetResult(new(null, ex.Message, true, DateTime.UtcNow));
            }
        });

        app.Map("/silent", async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            _accepted.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                _outcome.TrySetResult(new(null, "aborted", true, DateTime.UtcNow));
            }
        });

        app.Map("/close-first", async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            _accepted.TrySetResult();
            try
            {
                _closeStarted = DateTime.UtcNow;
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "server done", context.RequestAborted);
                _closeCompleted.TrySetResult(DateTime.UtcNow);
                _outcome.TrySetResult(new(socket.CloseStatus, socket.CloseStatusDescription, false, DateTime.UtcNow));
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                _outcome.TrySetResult(new(null, ex.Message, true, DateTime.UtcNow));
            }
        });

        app.Map("/hang", async context =>
        {
            // Takes the upgrade request and never answers it.
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
        });

        app.Map("/vanish", async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            _accepted.TrySetResult();

            // Once a message arrived (the upgrade is complete end to end), the backend process dies:
            // its connection ends with no closing handshake.
            await socket.ReceiveAsync(new byte[1024], context.RequestAborted);
            context.Abort();
        });

        app.Map("/stream", async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            _accepted.TrySetResult();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            var chunk = new byte[64 * 1024];
            var total = long.TryParse(context.Request.Query["total"], out var t) ? t : long.MaxValue;
            var delay = int.TryParse(context.Request.Query["delayMs"], out var d) ? d : 0;
            var sending = Task.Run(async () =>
            {
                await Task.Delay(delay, stop.Token);
                for (var sent = 0L; sent < total && !stop.IsCancellationRequested; sent += chunk.Length)
                {
                    await socket.SendAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, total - sent)), WebSocketMessageType.Binary, endOfMessage: true, stop.Token);
                }
            });
            try
            {
                var result = await socket.ReceiveAsync(new byte[1024], context.RequestAborted);
                while (result.MessageType != WebSocketMessageType.Close)
                {
                    result = await socket.ReceiveAsync(new byte[1024], context.RequestAborted);
                }

                _outcome.TrySetResult(new(result.CloseStatus, result.CloseStatusDescription, false, DateTime.UtcNow));
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                _outcome.TrySetResult(new(null, ex.Message, true, DateTime.UtcNow));
            }

            await stop.CancelAsync();
            await sending.ContinueWith(_ => { }, TaskScheduler.Default);
        });

        app.Map("/raw", async context =>
        {
            var upgrade = context.Features.Get<IHttpUpgradeFeature>();
            var key = context.Request.Headers["Sec-WebSocket-Key"].ToString();
            if (upgrade is not { IsUpgradableRequest: true } || key.Length == 0)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            context.Response.Headers["Sec-WebSocket-Accept"] = Convert.ToBase64String(
                SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
            context.Response.Headers.Connection = "Upgrade";
            context.Response.Headers.Upgrade = "websocket";
            var stream = await upgrade.UpgradeAsync();
            _accepted.TrySetResult();
            _raw.TrySetResult(stream);
            _rawStreams.Writer.TryWrite(stream);
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                _outcome.TrySetResult(new(null, "aborted", true, DateTime.UtcNow));
            }
        });
    }
}
