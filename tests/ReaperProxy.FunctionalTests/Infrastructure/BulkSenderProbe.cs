using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// A backend endpoint <c>/bulk?count=N&amp;size=BYTES&amp;seed=S</c> that, once the WebSocket is accepted,
/// sends <c>count</c> binary messages of <c>size</c> bytes back to back as fast as the connection takes them
/// (a download: a file, a snapshot, a burst of updates), the payload being <see cref="Payload"/>. Meanwhile it
/// keeps reading, so it answers pings and records the Close it receives (or that its connection was cut),
/// and answers that Close. It stays open after sending until the other side ends it.
/// </summary>
public sealed class BulkSenderProbe
{
    private readonly TaskCompletionSource<BackendOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<DateTime> _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _messagesSent;

    /// <summary>Completes when the backend's WebSocket ends (a Close received, or the connection failed).</summary>
    public Task<BackendOutcome> Outcome => _outcome.Task;

    /// <summary>Completes when the WebSocket was accepted.</summary>
    public Task Accepted => _accepted.Task;

    /// <summary>Completes when every message was handed to the connection.</summary>
    public Task<DateTime> AllSent => _sent.Task;

    /// <summary>Messages whose SendAsync completed.</summary>
    public int MessagesSent => Volatile.Read(ref _messagesSent);

    /// <summary>The deterministic payload of one message.</summary>
    public static byte[] Payload(int size, int seed)
    {
        var payload = new byte[size];
        new Random(seed).NextBytes(payload);
        return payload;
    }

    /// <summary>Maps <c>/bulk</c> onto a test backend.</summary>
    public void Map(WebApplication app)
    {
        app.Map("/bulk", async context =>
        {
            var count = int.Parse(context.Request.Query["count"].ToString() is { Length: > 0 } c ? c : "1", System.Globalization.CultureInfo.InvariantCulture);
            var size = int.Parse(context.Request.Query["size"].ToString(), System.Globalization.CultureInfo.InvariantCulture);
            var seed = int.Parse(context.Request.Query["seed"].ToString() is { Length: > 0 } s ? s : "1", System.Globalization.CultureInfo.InvariantCulture);
            var payload = Payload(size, seed);
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            _accepted.TrySetResult();
            var receiving = ReceiveAsync(socket, context.RequestAborted);
            try
            {
                for (var i = 0; i < count; i++)
                {
                    await socket.SendAsync(payload, WebSocketMessageType.Binary, endOfMessage: true, context.RequestAborted);
                    Interlocked.Increment(ref _messagesSent);
                }

                _sent.TrySetResult(DateTime.UtcNow);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                _outcome.TrySetResult(new(null, "send failed: " + ex.Message, true, DateTime.UtcNow));
            }

            await receiving;
        });
    }

    private async Task ReceiveAsync(WebSocket socket, CancellationToken aborted)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            // Bounded by the connection: it ends with a Close, an error, or the request being aborted.
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, aborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    _outcome.TrySetResult(new(result.CloseStatus, result.CloseStatusDescription, false, DateTime.UtcNow));
                    using var answer = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, answer.Token);
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            _outcome.TrySetResult(new(null, ex.Message, true, DateTime.UtcNow));
        }
    }
}
