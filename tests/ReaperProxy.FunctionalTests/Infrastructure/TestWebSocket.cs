using System.Net;
using System.Net.WebSockets;
using System.Text;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>
/// A <see cref="ClientWebSocket"/> over HTTP/1.1 (Upgrade) or HTTP/2 (extended CONNECT, h2c) with helpers
/// for text messages. Every operation is bounded by <see cref="Eventually.DefaultTimeout"/>.
/// </summary>
public sealed class TestWebSocket : IAsyncDisposable
{
    private readonly HttpMessageInvoker _invoker;

    private TestWebSocket(ClientWebSocket socket, HttpMessageInvoker invoker)
    {
        Socket = socket;
        _invoker = invoker;
    }

    /// <summary>The underlying socket.</summary>
    public ClientWebSocket Socket { get; }

    /// <summary>Connects over HTTP/1.1 (Upgrade).</summary>
    public static Task<TestWebSocket> ConnectHttp1Async(Uri uri) => ConnectAsync(uri, HttpVersion.Version11);

    /// <summary>Connects over HTTP/2 with prior knowledge (extended CONNECT on h2c).</summary>
    public static Task<TestWebSocket> ConnectHttp2Async(Uri uri) => ConnectAsync(uri, HttpVersion.Version20);

    /// <summary>Connects with exactly <paramref name="version"/>.</summary>
    public static async Task<TestWebSocket> ConnectAsync(Uri uri, Version version)
    {
        var socket = new ClientWebSocket();
        socket.Options.HttpVersion = version;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        socket.Options.CollectHttpResponseDetails = true;
        var invoker = new HttpMessageInvoker(TestClients.Handler());
        try
        {
            await socket.ConnectAsync(uri, invoker, Eventually.Within());
        }
        catch
        {
            socket.Dispose();
            invoker.Dispose();
            throw;
        }

        return new TestWebSocket(socket, invoker);
    }

    /// <summary>Asserts that a WebSocket to <paramref name="uri"/> is refused with 503 and <c>Retry-After: 5</c> (the proxy's admission refusals).</summary>
    public static async Task AssertRefusedWith503Async(Uri uri, Version version)
    {
        using var socket = new ClientWebSocket();
        socket.Options.HttpVersion = version;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        socket.Options.CollectHttpResponseDetails = true;
        using var invoker = new HttpMessageInvoker(TestClients.Handler());
        await Xunit.Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, invoker, Eventually.Within()));
        Xunit.Assert.Equal(HttpStatusCode.ServiceUnavailable, socket.HttpStatusCode);
        Xunit.Assert.Equal("5", Xunit.Assert.Single(socket.HttpResponseHeaders!["Retry-After"]));
    }

    /// <summary>Sends one text message.</summary>
    public Task SendTextAsync(string text) =>
        Socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, Eventually.Within());

    /// <summary>Receives one whole message as text; fails the test on a close or a binary message.</summary>
    public async Task<string> ReceiveTextAsync()
    {
        var buffer = new byte[16 * 1024];
        using var message = new MemoryStream();
        var token = Eventually.Within();
        while (true)
        {
            var result = await Socket.ReceiveAsync(buffer, token);
            Assert.True(result.MessageType == WebSocketMessageType.Text, $"expected a text message, got {result.MessageType} (close status {result.CloseStatus} '{result.CloseStatusDescription}')");
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return Encoding.UTF8.GetString(message.ToArray());
            }
        }
    }

    /// <summary>Sends <paramref name="text"/> and returns the next message received.</summary>
    public async Task<string> EchoAsync(string text)
    {
        await SendTextAsync(text);
        return await ReceiveTextAsync();
    }

    /// <summary>Performs the closing handshake and returns the peer's close status.</summary>
    public async Task<WebSocketCloseStatus?> CloseAsync(WebSocketCloseStatus status = WebSocketCloseStatus.NormalClosure, string? reason = "bye")
    {
        await Socket.CloseAsync(status, reason, Eventually.Within());
        return Socket.CloseStatus;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Socket.Dispose();
        _invoker.Dispose();
        return ValueTask.CompletedTask;
    }
}
