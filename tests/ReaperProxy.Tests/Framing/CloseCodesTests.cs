using ReaperProxy.Framing;

namespace ReaperProxy.Tests.Framing;

/// <summary>RFC 6455 §7.4: the proxy never puts a code on the wire that no endpoint may send.</summary>
public class CloseCodesTests
{
    [Theory]
    [InlineData(1000)]
    [InlineData(1001)]
    [InlineData(1002)]
    [InlineData(1003)]
    [InlineData(1007)]
    [InlineData(1011)]
    [InlineData(1012)]
    [InlineData(1014)]
    [InlineData(3000)]
    [InlineData(4999)]
    public void A_sendable_code_is_echoed(int code)
    {
        Assert.True(CloseCodes.IsSendable((ushort)code));
        Assert.Equal(code, CloseCodes.Echo((ushort)code));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(999)]
    [InlineData(1004)]
    [InlineData(1005)]
    [InlineData(1006)]
    [InlineData(1015)]
    [InlineData(1016)]
    [InlineData(2999)]
    [InlineData(5000)]
    [InlineData(65535)]
    public void Any_other_code_is_never_sent(int code) => Assert.False(CloseCodes.IsSendable((ushort)code));

    [Theory]
    [InlineData(999)]
    [InlineData(1005)]
    [InlineData(1006)]
    [InlineData(1015)]
    [InlineData(2999)]
    [InlineData(5000)]
    public void A_code_no_endpoint_may_send_is_answered_with_1002(int code) =>
        Assert.Equal(CloseCodes.ProtocolError, CloseCodes.Echo((ushort)code));

    [Fact]
    public void An_empty_close_is_answered_with_an_empty_close() =>
        Assert.Equal(CloseCodes.NoStatus, CloseCodes.Echo(CloseCodes.Empty));
}
