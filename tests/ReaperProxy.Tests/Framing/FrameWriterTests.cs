using System.Buffers.Binary;
using System.Text;
using ReaperProxy.Framing;

namespace ReaperProxy.Tests.Framing;

public class FrameWriterTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_control_frame_reads_back_as_written(bool mask)
    {
        var payload = "0123456789abcdef"u8.ToArray();
        var buffer = new byte[FrameHeader.MaxControlFrame];

        var length = FrameWriter.WriteControl(buffer, WebSocketOpcode.Ping, payload, mask);

        var frame = Assert.Single(ReferenceFrameReader.ReadAll(buffer.AsSpan(0, length)));
        Assert.True(frame.Fin);
        Assert.Equal(0, frame.Rsv);
        Assert.Equal(WebSocketOpcode.Ping, frame.Opcode);
        Assert.Equal(mask, frame.MaskKey is not null);
        Assert.Equal(payload, frame.Payload);
    }

    [Fact]
    public void Each_masked_frame_gets_a_fresh_key()
    {
        // RFC 6455 §5.3: the key must be unpredictable, so two frames must not share one. Keys are
        // drawn in batches: 300 frames cross several refills.
        var keys = new HashSet<uint>();
        var buffer = new byte[FrameHeader.MaxControlFrame];
        for (var i = 0; i < 300; i++)
        {
            FrameWriter.WriteControl(buffer, WebSocketOpcode.Ping, [1, 2, 3, 4], mask: true);
            keys.Add(BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(2)));
        }

        Assert.True(keys.Count > 295, $"{keys.Count} distinct keys in 300 frames");
    }

    [Fact]
    public void A_payload_over_125_bytes_is_refused()
    {
        var buffer = new byte[300];

        Assert.Throws<ArgumentOutOfRangeException>(() => FrameWriter.WriteControl(buffer, WebSocketOpcode.Ping, new byte[126], mask: false));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_close_frame_carries_its_code_and_reason(bool mask)
    {
        var buffer = new byte[FrameHeader.MaxControlFrame];

        var length = FrameWriter.WriteClose(buffer, 1001, "backend unresponsive", mask);

        var frame = Assert.Single(ReferenceFrameReader.ReadAll(buffer.AsSpan(0, length)));
        Assert.Equal(WebSocketOpcode.Close, frame.Opcode);
        Assert.Equal(1001, FrameWriter.ReadCloseCode(frame.Payload));
        Assert.Equal("backend unresponsive", Encoding.UTF8.GetString(frame.Payload.AsSpan(2)));
    }

    [Fact]
    public void A_close_without_a_payload_reads_as_no_status()
    {
        Assert.Equal(1005, FrameWriter.ReadCloseCode([]));
    }

    [Fact]
    public void A_close_reason_too_long_for_a_control_frame_is_truncated_to_fit()
    {
        // The XML doc of WriteClose promises truncation to 125 bytes (2 for the code, 123 of reason).
        var buffer = new byte[FrameHeader.MaxControlFrame];
        var reason = new string('r', 200);

        var length = FrameWriter.WriteClose(buffer, 1001, reason, mask: false);

        var frame = Assert.Single(ReferenceFrameReader.ReadAll(buffer.AsSpan(0, length)));
        Assert.Equal(FrameHeader.MaxControlPayload, frame.Payload.Length);
        Assert.Equal(1001, FrameWriter.ReadCloseCode(frame.Payload));
        Assert.Equal(reason[..123], Encoding.UTF8.GetString(frame.Payload.AsSpan(2)));
    }

    [Fact]
    public void A_truncated_close_reason_stays_valid_utf8()
    {
        // RFC 6455 §5.5.1 / §8.1: the reason is UTF-8; a receiver fails the connection on invalid text,
        // so a cut must not split a character ('é' is two bytes: 122 + 2 would overflow 123).
        var buffer = new byte[FrameHeader.MaxControlFrame];
        var reason = new string('a', 122) + "é" + "tail";

        var length = FrameWriter.WriteClose(buffer, 1001, reason, mask: false);

        var frame = Assert.Single(ReferenceFrameReader.ReadAll(buffer.AsSpan(0, length)));
        var text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(frame.Payload.AsSpan(2));
        Assert.Equal(new string('a', 122), text);
    }
}
