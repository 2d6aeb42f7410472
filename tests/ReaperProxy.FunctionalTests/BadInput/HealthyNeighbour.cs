using System.Net.WebSockets;
using ReaperProxy.FunctionalTests.Infrastructure;

namespace ReaperProxy.FunctionalTests.BadInput;

/// <summary>
/// A well-behaved WebSocket on the same proxy as a bad input, open before it and checked after it: the
/// bad input must not touch it (its bytes arrive intact, it is not closed).
/// </summary>
public sealed class HealthyNeighbour : IAsyncDisposable
{
    private readonly TestWebSocket _socket;

    private HealthyNeighbour(TestWebSocket socket) => _socket = socket;

    /// <summary>Opens a WebSocket to the backend's <c>/echo</c> through <paramref name="proxy"/> and echoes one message.</summary>
    public static async Task<HealthyNeighbour> OpenAsync(TestProxy proxy, bool http2 = false)
    {
        var socket = http2
            ? await TestWebSocket.ConnectHttp2Async(proxy.WebSocketUri("/echo", h2c: true))
            : await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo"));
        Assert.Equal("before", await socket.EchoAsync("before"));
        return new HealthyNeighbour(socket);
    }

    /// <summary>Still open, and a large and a small message come back byte for byte.</summary>
    public async Task AssertUnaffectedAsync()
    {
        Assert.True(_socket.Socket.State == WebSocketState.Open, $"the healthy neighbour was closed: {_socket.Socket.State} {_socket.Socket.CloseStatus} '{_socket.Socket.CloseStatusDescription}'");
        var large = new string('n', 70_000);
        Assert.Equal(large, await _socket.EchoAsync(large));
        Assert.Equal("after", await _socket.EchoAsync("after"));
        Assert.Equal(WebSocketState.Open, _socket.Socket.State);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_socket.Socket.State == WebSocketState.Open)
        {
            try
            {
                await _socket.CloseAsync();
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
            {
                // Disposed below either way.
            }
        }

        await _socket.DisposeAsync();
    }
}
